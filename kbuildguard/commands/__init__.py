"""One module per verb: what each command does, between the CLI's parsing and the domain modules."""
