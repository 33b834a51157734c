/* Self-test on the golden vectors (golden/aed_golden.c): the reference app runs it at boot. */
#ifndef AED_SELFTEST_H
#define AED_SELFTEST_H

#include <stdint.h>

#include "aed_golden.h"

/* What the last aed_selftest() did. */
typedef struct {
    uint32_t clips, passed;
    uint32_t frames, windows;                /* over all clips */
    uint32_t frontend_cycles, model_cycles;  /* aed_cycles() spent in each stage, all clips */
    uint8_t failed[AED_GOLDEN_N_CLIPS];      /* per clip: AED_SELFTEST_* bits, 0 = pass */
} aed_selftest_stats_t;

#define AED_SELFTEST_FEATURES 1u /* a feature row or the frame count differs */
#define AED_SELFTEST_WINDOWS 2u  /* a window's scores or the window count differ */
#define AED_SELFTEST_CLIP 4u     /* clip scores or decisions differ */

/* Stream every golden clip through front end (hop-sized chunks), window assembly, engine and
 * aggregation; compare each stage with the expected bytes. Returns the number of failing clips. */
int aed_selftest(void);

/* Statistics of the last aed_selftest() call. */
void aed_selftest_stats(aed_selftest_stats_t *out);

#endif /* AED_SELFTEST_H */
