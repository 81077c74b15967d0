/* nn: BERT for sequence classification on flat parameter/gradient buffers,
 * written once against the backend interface. Knows nothing of files or ranks. */
#ifndef ADEBERT_NN_H
#define ADEBERT_NN_H

#include <stddef.h>

/* One line describing the GPU(s) the CUDA backend sees, or why it cannot run
 * ("built without CUDA", "no CUDA device: <driver message>"). Returns the number
 * of usable devices (0 when none). */
int nn_cuda_device_summary(char *buf, size_t len);

#endif
