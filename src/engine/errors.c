/* errors.c - messages for the NUAGE_E_* codes (include/nuage/nuage.h). */
#include "nuage/nuage.h"

const char *nuage_strerror(int err) {
    switch (err) {
    case NUAGE_OK: return "success";
    case NUAGE_E_INVAL: return "invalid argument";
    case NUAGE_E_NOMEM: return "out of memory";
    case NUAGE_E_IO: return "input/output error";
    case NUAGE_E_FORMAT: return "malformed file";
    case NUAGE_E_UNSUPPORTED: return "not supported";
    case NUAGE_E_KV_FULL: return "KV cache full";
    case NUAGE_E_CTX: return "context length exceeded";
    case NUAGE_E_RANGE: return "value out of range";
    case NUAGE_E_TEMPLATE: return "chat template error";
    case NUAGE_E_STATE: return "invalid state";
    default: return "unknown error";
    }
}
