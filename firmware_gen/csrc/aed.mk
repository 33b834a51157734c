# aed.mk: this package for an existing Make project.
#
#   include path/to/fw/aed.mk
#   CFLAGS += $(AED_CFLAGS)           # -I for the library headers
#   SRCS   += $(AED_SOURCES)          # front end, engine, post-processing (no platform needs)
#   SRCS   += $(AED_PROTO_SOURCES)    # optional: device side of the serial protocol
#
# The protocol and the reference app call the platform hooks of aed/include/aed_platform.h:
# link a port ($(AED_PORT_HOST_SOURCES), $(AED_PORT_MPS2_SOURCES)) or your own.
# The reference app (self-test + protocol): $(AED_APP_SOURCES) with $(AED_APP_CFLAGS).
# Set AED_DIR before the include to use another path to the package.

ifndef AED_DIR
AED_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
endif

AED_INCLUDE_DIRS := $(AED_DIR)/aed/include
AED_CFLAGS := $(addprefix -I,$(AED_INCLUDE_DIRS))
# The task's scores beyond aed_post's window assembly, where the package has them (anomaly).
AED_TASK_SOURCES := $(sort $(wildcard $(AED_DIR)/aed/src/aed_anomaly*.c))
AED_SOURCES := $(addprefix $(AED_DIR)/aed/src/,aed_frontend.c aed_frontend_tables.c aed_model.c aed_post.c) $(AED_TASK_SOURCES)
AED_PROTO_SOURCES := $(addprefix $(AED_DIR)/aed/src/,aed_proto_frame.c aed_proto.c)

AED_APP_INCLUDE_DIRS := $(AED_DIR)/app $(AED_DIR)/golden
AED_APP_CFLAGS := $(addprefix -I,$(AED_APP_INCLUDE_DIRS))
AED_APP_SOURCES := $(AED_DIR)/app/aed_app.c $(AED_DIR)/app/aed_selftest.c $(AED_DIR)/golden/aed_golden.c

AED_PORT_HOST_SOURCES := $(AED_DIR)/port/host/aed_platform_host.c
AED_PORT_MPS2_SOURCES := $(addprefix $(AED_DIR)/port/mps2_an386/,aed_platform_mps2.c aed_startup_m4.c)
AED_PORT_MPS2_LDSCRIPT := $(AED_DIR)/port/mps2_an386/mps2_an386.ld
