/* Pieces of the CUDA backend's interface that exist in every build: precision
 * names, and stubs when the CUDA backend is not compiled in. */
#include "nn/nn.h"

#include <stdio.h>
#include <string.h>

const char *nn_precision_name(nn_precision p)
{
    switch (p) {
    case NN_PREC_FP32: return "fp32";
    case NN_PREC_TF32: return "tf32";
    case NN_PREC_BF16: return "bf16";
    case NN_PREC_FP16: return "fp16";
    }
    return NULL;
}

int nn_precision_parse(const char *s, nn_precision *out)
{
    static const nn_precision all[] = {NN_PREC_FP32, NN_PREC_TF32, NN_PREC_BF16, NN_PREC_FP16};
    for (size_t i = 0; s && i < sizeof all / sizeof all[0]; i++)
        if (strcmp(s, nn_precision_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    return 1;
}

#ifndef ADEBERT_HAVE_CUDA
int nn_cuda_device_summary(char *buf, size_t len)
{
    snprintf(buf, len, "built without CUDA");
    return 0;
}

int nn_cuda_device_pci(int device, char *buf, size_t len)
{
    (void)device;
    snprintf(buf, len, "built without CUDA");
    return -1;
}

int nn_backend_cuda_create(nn_backend **out, int device, nn_precision prec, char *err, size_t errlen)
{
    (void)device;
    (void)prec;
    *out = NULL;
    snprintf(err, errlen, "cuda backend: built without CUDA (reconfigure with -DADEBERT_CUDA=ON on a host with nvcc)");
    return 1;
}

const char *nn_cuda_last_error(const nn_backend *b)
{
    (void)b;
    return NULL;
}

size_t nn_cuda_peak_bytes(const nn_backend *b)
{
    (void)b;
    return 0;
}

const char *nn_cuda_device_name(const nn_backend *b)
{
    (void)b;
    return "";
}

void *nn_cuda_stream(const nn_backend *b)
{
    (void)b;
    return NULL;
}
#endif
