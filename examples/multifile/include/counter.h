/* SPDX-License-Identifier: GPL-2.0 */
#ifndef MULTIFILE_COUNTER_H
#define MULTIFILE_COUNTER_H

int counter_next(void);

#endif
