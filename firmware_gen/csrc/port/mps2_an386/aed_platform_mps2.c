/* Platform for Arm MPS2 AN386 (Cortex-M4), as emulated by qemu-system-arm -M mps2-an386.
 *
 * Serial link, one of two:
 * - UART (default): CMSDK UART0 at 0x40004000, polled (DATA +0x00, STATE +0x04: bit0 TX full,
 *   bit1 RX full, CTRL +0x08: bit0 TX enable, bit1 RX enable, BAUDDIV +0x10), 115200 baud from
 *   the 25 MHz clock. What a board runs.
 * - -DAED_LINK_SEMIHOSTING: Arm semihosting SYS_READ/SYS_WRITE on ":tt", which QEMU
 *   (-semihosting-config enable=on,target=native) maps to its own stdin/stdout. QEMU's UART model
 *   takes one received byte per emulator main-loop turn (about 7 kB/s, 13 s per 3-s clip);
 *   semihosting moves a block per call and blocks the emulator while the host is silent. Only
 *   for QEMU or a debugger: on a bare board the BKPT faults.
 *
 * Cycle counter: SysTick on the processor clock, period 2^24, extended to 32 bits by counting
 * wraps in SysTick_Handler. On silicon one tick is one core cycle. QEMU clocks SysTick from the
 * 25 MHz SYSCLK in virtual time: under -icount shift=0 (one instruction per ns) one tick is
 * 40 instructions. QEMU does not emulate DWT->CYCCNT; on a real board build with -DAED_USE_DWT
 * to read it instead (exact cycles, no interrupt). */
#include "aed_platform.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

#define UART0_BASE 0x40004000u
#define UART_DATA REG(UART0_BASE + 0x00u)
#define UART_STATE REG(UART0_BASE + 0x04u)
#define UART_CTRL REG(UART0_BASE + 0x08u)
#define UART_BAUDDIV REG(UART0_BASE + 0x10u)
#define UART_TX_FULL 1u
#define UART_RX_FULL 2u
#define AED_SYSCLK_HZ 25000000u
#define AED_BAUD 115200u

#define SYST_CSR REG(0xE000E010u)
#define SYST_RVR REG(0xE000E014u)
#define SYST_CVR REG(0xE000E018u)
#define SCB_ICSR REG(0xE000ED04u)
#define ICSR_PENDSTSET (1u << 26)
#define DEMCR REG(0xE000EDFCu)
#define DWT_CTRL REG(0xE0001000u)
#define DWT_CYCCNT REG(0xE0001004u)

/* Stack bounds from the linker script; the startup code fills the stack with AED_STACK_FILL. */
extern uint32_t __stack_bottom, __stack_top;
#define AED_STACK_FILL 0xA5A5A5A5u

static volatile uint32_t systick_wraps;

void SysTick_Handler(void);
void SysTick_Handler(void)
{
    systick_wraps++;
}

void aed_platform_init(void)
{
    UART_BAUDDIV = AED_SYSCLK_HZ / AED_BAUD;
    UART_CTRL = 3u; /* TX and RX enabled, no interrupts */
#ifdef AED_USE_DWT
    DEMCR |= 1u << 24; /* TRCENA */
    DWT_CYCCNT = 0;
    DWT_CTRL |= 1u;
#else
    SYST_RVR = 0x00FFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 7u; /* processor clock, interrupt on wrap, enabled */
    while (SYST_CVR == 0) { /* wait for the first reload: aed_cycles() starts there at 0 */
    }
#endif
}

#ifdef AED_LINK_SEMIHOSTING
#define SH_SYS_OPEN 0x01u
#define SH_SYS_WRITE 0x05u
#define SH_SYS_READ 0x06u

static int32_t semihost(uint32_t op, const uint32_t *args)
{
    register uint32_t r0 __asm__("r0") = op;
    register const uint32_t *r1 __asm__("r1") = args;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return (int32_t)r0;
}

/* ":tt" opened for reading is the console's input, for writing (mode 4, "w") its output. */
static int32_t semihost_tty(uint32_t mode)
{
    const uint32_t args[3] = {(uint32_t)(uintptr_t)":tt", mode, 3u};
    return semihost(SH_SYS_OPEN, args);
}

static int32_t link_in = -1, link_out = -1;
static uint8_t rx_block[1024];
static uint32_t rx_len, rx_pos;

int aed_uart_getc(void)
{
    if (link_in < 0) {
        link_in = semihost_tty(0u);
    }
    while (rx_pos == rx_len) {
        /* blocks until the host sends something; returns the number of bytes NOT read */
        const uint32_t args[3] = {(uint32_t)link_in, (uint32_t)(uintptr_t)rx_block,
                                  (uint32_t)sizeof rx_block};
        const int32_t left = semihost(SH_SYS_READ, args);
        if (left < 0 || (uint32_t)left >= sizeof rx_block) {
            return -1; /* end of input or error: the host closed the link */
        }
        rx_len = (uint32_t)sizeof rx_block - (uint32_t)left;
        rx_pos = 0;
    }
    return rx_block[rx_pos++];
}

void aed_uart_write(const uint8_t *data, size_t n)
{
    if (link_out < 0) {
        link_out = semihost_tty(4u);
    }
    while (n > 0) {
        const uint32_t args[3] = {(uint32_t)link_out, (uint32_t)(uintptr_t)data, (uint32_t)n};
        const int32_t left = semihost(SH_SYS_WRITE, args);
        if (left < 0 || (size_t)left >= n) {
            return; /* the host went away */
        }
        data += n - (size_t)left;
        n = (size_t)left;
    }
}
#else
int aed_uart_getc(void)
{
    while ((UART_STATE & UART_RX_FULL) == 0) {
    }
    return (int)(UART_DATA & 0xFFu);
}

void aed_uart_write(const uint8_t *data, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        while ((UART_STATE & UART_TX_FULL) != 0) {
        }
        UART_DATA = data[i];
    }
}
#endif

uint32_t aed_cycles(void)
{
#ifdef AED_USE_DWT
    return DWT_CYCCNT;
#else
    /* Ticks T since the first reload: the counter runs 0xFFFFFF..0 and reaches 0 (interrupt) at
     * T = k 2^24 - 1. n = zero crossings so far (handled + pending) = floor((T + 1) / 2^24), read
     * consistently with the counter, interrupts masked. */
    uint32_t n, count, pending;
    __asm__ volatile("cpsid i" ::: "memory");
    pending = SCB_ICSR & ICSR_PENDSTSET;
    count = SYST_CVR;
    if ((SCB_ICSR & ICSR_PENDSTSET) != pending) {
        pending = 1u;
        count = SYST_CVR; /* it crossed zero just now: read the counter after the crossing */
    }
    n = systick_wraps + (pending != 0);
    __asm__ volatile("cpsie i" ::: "memory");
    return ((n - (count == 0)) << 24) + (0x00FFFFFFu - count);
#endif
}

size_t aed_stack_high_water(void)
{
    const uint32_t *p = &__stack_bottom;
    while (p < &__stack_top && *p == AED_STACK_FILL) {
        p++;
    }
    return (size_t)((const uint8_t *)&__stack_top - (const uint8_t *)p);
}
