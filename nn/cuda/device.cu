// Device discovery for the CUDA backend. Runs (and fails politely) on hosts
// without a GPU or driver: the CPU backend stays usable there.
#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <stdio.h>

extern "C" {
#include "nn/nn.h"
}

extern "C" int nn_cuda_device_summary(char *buf, size_t len)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        snprintf(buf, len, "no CUDA device: %s", e == cudaSuccess ? "0 devices" : cudaGetErrorString(e));
        (void)cudaGetLastError();
        return 0;
    }
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, 0) != cudaSuccess) {
        snprintf(buf, len, "%d CUDA device(s); cudaGetDeviceProperties failed", n);
        return n;
    }
    int rt = 0, drv = 0;
    cudaRuntimeGetVersion(&rt);
    cudaDriverGetVersion(&drv);
    snprintf(buf, len, "%d x %s (sm_%d%d, %.1f GiB), runtime %d, driver %d", n, p.name, p.major,
             p.minor, (double)p.totalGlobalMem / (1024.0 * 1024 * 1024), rt, drv);
    return n;
}

extern "C" int nn_cuda_device_pci(int device, char *buf, size_t len)
{
    char bus[32];
    cudaError_t e = cudaDeviceGetPCIBusId(bus, (int)sizeof bus, device);
    if (e != cudaSuccess) {
        snprintf(buf, len, "cudaDeviceGetPCIBusId(%d): %s", device, cudaGetErrorString(e));
        (void)cudaGetLastError();
        return -1;
    }
    snprintf(buf, len, "%s", bus);
    return 0;
}
