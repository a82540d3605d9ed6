/* The source of the "vendor blob": in real life you only get blob.o_shipped. It lives in its own
 * folder because kbuild would compile a blob.c beside blob.o_shipped instead of using the blob. */
int blob_answer(void)
{
	return 42;
}
