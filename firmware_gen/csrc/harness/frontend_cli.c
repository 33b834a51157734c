/* Host harness for the C front end, used by the tests and benchmarks.
 *
 * stdin:  records of [uint32 little-endian n][n int16 samples]
 * stdout: for each record, aed_frontend_n_frames(n) * AED_FE_N_MELS int8 features
 * argv[1]: "clip" (whole-clip API) or "stream" (aed_frontend_feed in chunks of 1..997 samples).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aed_frontend.h"

static aed_frontend_t fe;

int main(int argc, char **argv)
{
    const int stream = argc > 1 && strcmp(argv[1], "stream") == 0;
    uint32_t n;
    uint32_t chunk_state = 12345u;
    while (fread(&n, sizeof n, 1, stdin) == 1) {
        int16_t *audio = malloc((n ? n : 1) * sizeof *audio);
        int8_t *feat = malloc((aed_frontend_n_frames(n) + 1) * AED_FE_N_MELS);
        size_t frames = 0;
        if (!audio || !feat || fread(audio, sizeof *audio, n, stdin) != n) {
            fprintf(stderr, "frontend_cli: short input\n");
            return 2;
        }
        if (stream) {
            size_t pos = 0;
            aed_frontend_init(&fe);
            while (pos < n) {
                int ready;
                size_t chunk;
                chunk_state = chunk_state * 1103515245u + 12345u; /* vary the chunk sizes */
                chunk = 1 + (chunk_state >> 16) % 997;
                chunk = chunk < n - pos ? chunk : n - pos;
                while (chunk > 0) {
                    const size_t used = aed_frontend_feed(&fe, &audio[pos], chunk,
                                                          &feat[frames * AED_FE_N_MELS], &ready);
                    pos += used;
                    chunk -= used;
                    frames += (size_t)ready;
                }
            }
        } else {
            frames = aed_frontend_clip(&fe, audio, n, feat);
        }
        fwrite(feat, AED_FE_N_MELS, frames, stdout);
        free(audio);
        free(feat);
    }
    return 0;
}
