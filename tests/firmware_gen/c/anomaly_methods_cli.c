/* Host harness for the window scores of aed_anomaly_methods.c (causal predictor, ID classifier,
 * Group MADE), used by tests/firmware_gen/test_anomaly_methods.py.
 *
 * stdin:  uint32 n, then n records: the window (AED_POST_WINDOW_BYTES int8), the model output
 *         (OUTPUT_BYTES int8) and, for the ID classifier, the own class index (uint8), set with
 *         aed_anomaly_set_machine_id before the window is scored.
 * stdout: ID classifier only: the default own ID (uint32) and what setting index
 *         AED_ANOMALY_ID_N_CLASSES returned (int8, -1 expected); then n uint32 window scores. */
#include <stdio.h>

#include "aed_anomaly.h"

#if defined(AED_ANOMALY_METHOD_ID_CLASSIFIER)
#define OUTPUT_BYTES AED_ANOMALY_ID_N_CLASSES
#elif defined(AED_ANOMALY_METHOD_GROUP_MADE)
#define OUTPUT_BYTES (2 * AED_POST_WINDOW_BYTES)
#else
#define OUTPUT_BYTES (AED_ANOMALY_PRED_ROWS * AED_FE_N_MELS)
#endif

int main(void)
{
    static int8_t window[AED_POST_WINDOW_BYTES], output[OUTPUT_BYTES];
    uint32_t n, i, score;
#if defined(AED_ANOMALY_METHOD_ID_CLASSIFIER)
    const uint32_t first = aed_anomaly_machine_id();
    const int8_t refused = (int8_t)aed_anomaly_set_machine_id(AED_ANOMALY_ID_N_CLASSES);
    if (fwrite(&first, sizeof first, 1, stdout) != 1 || fwrite(&refused, 1, 1, stdout) != 1) {
        return 2;
    }
#endif
    if (fread(&n, sizeof n, 1, stdin) != 1) {
        return 2;
    }
    for (i = 0; i < n; i++) {
        if (fread(window, 1, sizeof window, stdin) != sizeof window ||
            fread(output, 1, sizeof output, stdin) != sizeof output) {
            return 2;
        }
#if defined(AED_ANOMALY_METHOD_ID_CLASSIFIER)
        {
            uint8_t own;
            if (fread(&own, 1, 1, stdin) != 1 || aed_anomaly_set_machine_id(own) != 0) {
                return 3;
            }
        }
#endif
        score = aed_anomaly_window_score(window, output);
        if (fwrite(&score, sizeof score, 1, stdout) != 1) {
            return 2;
        }
    }
    return 0;
}
