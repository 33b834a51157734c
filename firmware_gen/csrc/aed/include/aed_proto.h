/* aedfw serial protocol, device side: request dispatcher over the frame codec.
 * Spec: docs/protocol.md. C99, no malloc, static state (one protocol instance per device).
 * Needs aed_platform.h: aed_uart_getc (blocking; a negative value means end of input, host
 * builds only), aed_uart_write, aed_cycles. Optional: #define AED_PLATFORM_STACK_USED() in
 * aed_platform.h to report the stack high-water mark in STATS. */
#ifndef AED_PROTO_H
#define AED_PROTO_H

#include <stdint.h>

#include "aed_proto_frame.h"

/* Command codes (requests; responses carry code | AED_PROTO_RESPONSE_BIT). */
#define AED_CMD_HELLO 0x01u
#define AED_CMD_FEATURES 0x02u
#define AED_CMD_INFER 0x03u
#define AED_CMD_CLASSIFY 0x04u
#define AED_CMD_BENCH 0x05u
#define AED_CMD_STATS 0x06u
#define AED_CMD_RESET 0x07u
#define AED_CMD_MACHINE_ID 0x08u

/* Response status codes. */
#define AED_STATUS_OK 0u
#define AED_STATUS_BAD_CRC 1u
#define AED_STATUS_BAD_LENGTH 2u
#define AED_STATUS_UNKNOWN_COMMAND 3u
#define AED_STATUS_BAD_STATE 4u
#define AED_STATUS_BUSY 5u
#define AED_STATUS_BAD_ARGUMENT 6u
#define AED_STATUS_BAD_VERSION 7u
#define AED_STATUS_UNSUPPORTED 8u

/* HELLO capability bits. */
#define AED_CAP_FEATURES 0x01u
#define AED_CAP_INFER 0x02u
#define AED_CAP_CLASSIFY 0x04u
#define AED_CAP_BENCH 0x08u


/* (Re)initialise all protocol state: streams, counters, duplicate cache; sets the reset flag. */
void aed_proto_init(void);

/* Feed one received byte; a completed request is handled and answered via aed_uart_write. */
void aed_proto_feed(uint8_t byte);

/* aed_proto_init, then serve requests forever (returns only if aed_uart_getc reports end of
 * input, which only host builds do). Call it from main after the platform init and self-test. */
void aed_proto_run(void);

#endif /* AED_PROTO_H */
