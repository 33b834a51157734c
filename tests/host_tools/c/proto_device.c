/* The protocol's host test device: serves requests on stdin/stdout until end of input. */
#include "aed_platform.h"
#include "aed_proto.h"

int main(void)
{
    aed_platform_init();
    aed_proto_run();
    return 0;
}
