/*
 * fuzz_safetensors.c - the safetensors header parser (st_open_memory) on
 * arbitrary bytes. When a file is accepted, every tensor it exposes must
 * lie inside the input (each byte is read, so ASan sees any overrun), its
 * size must match its shape and dtype, and look-up by name must find it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llm/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private copy, so reads past `size` hit ASan's redzone. */
    uint8_t *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    st_file *f = st_open_memory(buf, size, NULL);
    if (f) {
        unsigned sum = 0;
        for (size_t i = 0; i < st_tensor_count(f); i++) {
            const struct st_tensor *t = st_tensor_at(f, i);
            if (t->n_elements * st_dtype_size(t->dtype) != t->size) abort();
            if ((const uint8_t *)t->data < buf || (const uint8_t *)t->data + t->size > buf + size)
                abort();
            for (uint64_t b = 0; b < t->size; b++)
                sum += ((const uint8_t *)t->data)[b];
            if (st_find(f, t->name) != t) abort();
        }
        (void)sum;
        st_close(f);
    }
    free(buf);
    return 0;
}
