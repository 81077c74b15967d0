/* Device summary when the CUDA backend is not compiled in. */
#include "nn/nn.h"

#include <stdio.h>

#ifndef ADEBERT_HAVE_CUDA
int nn_cuda_device_summary(char *buf, size_t len)
{
    snprintf(buf, len, "built without CUDA");
    return 0;
}
#endif
