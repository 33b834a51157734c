/* Cortex-M4 startup for the mps2-an386 image: vector table, Reset_Handler (copy .data, zero .bss,
 * fill the unused stack for the high-water mark, call main), default fault handlers. No libc
 * start-up code is used (-nostartfiles). */
#include <stdint.h>

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end;
extern uint32_t __stack_bottom, __stack_top;
int main(void);

void Reset_Handler(void);
void Default_Handler(void);
void SysTick_Handler(void);

/* Faults and unexpected interrupts stop here: a debugger shows where. */
void Default_Handler(void)
{
    for (;;) {
    }
}

void Reset_Handler(void)
{
    uint32_t *dst = &__data_start;
    const uint32_t *src = &__data_load;
    uintptr_t sp;
    while (dst < &__data_end) {
        *dst++ = *src++;
    }
    for (dst = &__bss_start; dst < &__bss_end; dst++) {
        *dst = 0;
    }
    /* Fill the stack below this frame (with a margin) so aed_stack_high_water() can measure it. */
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (dst = &__stack_bottom; (uintptr_t)dst < sp - 64u; dst++) {
        *dst = 0xA5A5A5A5u;
    }
    (void)main();
    for (;;) { /* main returned (self-test-only image): halt */
        __asm__ volatile("wfi");
    }
}

/* Cortex-M4 exception vectors; the MPS2 peripheral interrupts are unused (polled UART). */
__attribute__((section(".isr_vector"), used)) const uintptr_t aed_vectors[16] = {
    (uintptr_t)&__stack_top,
    (uintptr_t)Reset_Handler,
    (uintptr_t)Default_Handler, /* NMI */
    (uintptr_t)Default_Handler, /* HardFault */
    (uintptr_t)Default_Handler, /* MemManage */
    (uintptr_t)Default_Handler, /* BusFault */
    (uintptr_t)Default_Handler, /* UsageFault */
    0, 0, 0, 0,
    (uintptr_t)Default_Handler, /* SVCall */
    (uintptr_t)Default_Handler, /* DebugMonitor */
    0,
    (uintptr_t)Default_Handler, /* PendSV */
    (uintptr_t)SysTick_Handler,
};
