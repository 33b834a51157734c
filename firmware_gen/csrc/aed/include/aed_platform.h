/* Platform hooks: the only functions the firmware needs from the board. Implemented for the host
 * (aed_platform_host.c: stdin/stdout, for a pseudo-terminal) and for QEMU mps2-an386 / Cortex-M
 * (aed_platform_mps2.c: CMSDK UART0, SysTick or DWT cycle counter). Port these five to your board. */
#ifndef AED_PLATFORM_H
#define AED_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

/* Bring up the UART and the cycle counter. Called once, first thing in main(). */
void aed_platform_init(void);

/* Next byte from the serial link, blocking; a negative value when the link is closed (host). */
int aed_uart_getc(void);

/* Send n bytes on the serial link (blocking, unbuffered). */
void aed_uart_write(const uint8_t *data, size_t n);

/* Free-running 32-bit counter for timing stages; differences are valid across one wrap.
 * Units: core clock cycles on silicon (DWT->CYCCNT or SysTick), see the platform file. */
uint32_t aed_cycles(void);

/* Deepest stack use so far in bytes (0 when the platform cannot tell). */
size_t aed_stack_high_water(void);
#define AED_PLATFORM_STACK_USED() aed_stack_high_water()

#endif /* AED_PLATFORM_H */
