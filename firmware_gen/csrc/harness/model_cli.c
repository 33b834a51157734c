/* Host harness for the generated engine: reads int8 input windows of
 * AED_MODEL_IN_FRAMES x AED_MODEL_IN_MELS bytes from stdin until EOF and writes
 * AED_MODEL_N_CLASSES int8 scores per window to stdout. */
#include <stdio.h>

#include "aed_model.h"

#define AED_IN_BYTES (AED_MODEL_IN_FRAMES * AED_MODEL_IN_MELS)

int main(void)
{
    static int8_t in[AED_IN_BYTES];
    int8_t out[AED_MODEL_N_CLASSES];
    size_t got;
    while ((got = fread(in, 1, sizeof in, stdin)) == sizeof in) {
        aed_model_run(in, out);
        if (fwrite(out, 1, sizeof out, stdout) != sizeof out) {
            return 2;
        }
    }
    return got == 0 ? 0 : 1; /* a partial record is an error */
}
