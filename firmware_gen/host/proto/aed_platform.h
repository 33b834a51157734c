/* Host (POSIX) platform hooks for the protocol's test device: the UART is stdin/stdout, so the
 * device runs on a pseudo-terminal or a pipe. For tests and fuzzing, not for targets. */
#ifndef AED_PLATFORM_H
#define AED_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

void aed_platform_init(void);
int aed_uart_getc(void); /* next byte, or -1 at end of input */
void aed_uart_write(const uint8_t *data, size_t n);
uint32_t aed_cycles(void); /* monotonic nanoseconds, wrapping */

#endif /* AED_PLATFORM_H */
