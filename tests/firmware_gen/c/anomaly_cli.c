/* Host harness for the anomaly scores (aed_anomaly.c), used by the tests.
 *
 * stdin:  [uint32 mode][uint32 n], then
 *         mode 0: n windows, each AED_POST_WINDOW_BYTES int8 inputs then as many int8 outputs;
 *         mode 1: n uint32 window scores.
 * stdout: mode 0: n uint32 window scores;
 *         then, for the n window scores (computed or given) in order: the clip's uint64 sum,
 *         uint32 count and uint8 decision, then per score the stream's uint8 decision and
 *         uint8 alarm after pushing it.
 */
#include <stdio.h>
#include <stdlib.h>

#include "aed_anomaly.h"

static aed_anomaly_clip_t clip;
static aed_anomaly_stream_t stream;

int main(void)
{
    uint32_t mode, n, i;
    uint32_t *scores;
    uint8_t decision;
    if (fread(&mode, sizeof mode, 1, stdin) != 1 || fread(&n, sizeof n, 1, stdin) != 1) {
        return 2;
    }
    scores = malloc((size_t)n * sizeof *scores + 1);
    if (scores == NULL) {
        return 2;
    }
    for (i = 0; i < n; i++) {
        if (mode == 0) {
            int8_t window[AED_POST_WINDOW_BYTES], output[AED_POST_WINDOW_BYTES];
            if (fread(window, 1, sizeof window, stdin) != sizeof window ||
                fread(output, 1, sizeof output, stdin) != sizeof output) {
                return 2;
            }
            scores[i] = aed_anomaly_window_score(window, output);
        } else if (fread(&scores[i], sizeof scores[i], 1, stdin) != 1) {
            return 2;
        }
    }
    if (mode == 0) {
        fwrite(scores, sizeof *scores, n, stdout);
    }
    aed_anomaly_clip_init(&clip);
    aed_anomaly_stream_init(&stream);
    for (i = 0; i < n; i++) {
        aed_anomaly_clip_add(&clip, scores[i]);
    }
    decision = aed_anomaly_decide(&clip);
    fwrite(&clip.sum, sizeof clip.sum, 1, stdout);
    fwrite(&clip.n_windows, sizeof clip.n_windows, 1, stdout);
    fwrite(&decision, 1, 1, stdout);
    for (i = 0; i < n; i++) {
        const uint8_t alarm = aed_anomaly_stream_push(&stream, scores[i]);
        fwrite(&stream.decision, 1, 1, stdout);
        fwrite(&alarm, 1, 1, stdout);
    }
    free(scores);
    return 0;
}
