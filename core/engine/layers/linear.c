/* linear.c: fully connected layer, torch.nn.Linear (y = x W^T + b). */
#include <cblas.h>

#include "layers.h"

void linear_forward(float *out, const float *in, const float *weight, const float *bias,
                    const tb_linear_shape *s, int n)
{
    const int nin = s->in_features, nout = s->out_features;
    /* out [n, nout] = in [n, nin] x W^T [nin, nout] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, nout, nin, 1.0f, in, nin, weight, nin, 0.0f, out, nout);
    if (bias) {
        for (int i = 0; i < n; i++) {
            float *row = out + (size_t)i * nout;
            for (int o = 0; o < nout; o++) row[o] += bias[o];
        }
    }
}

void linear_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                     const float *weight, const tb_linear_shape *s, int n, int accumulate_din)
{
    const int nin = s->in_features, nout = s->out_features;
    /* dW [nout, nin] += dout^T [nout, n] x in [n, nin] */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nout, nin, n, 1.0f, dout, nout, in, nin, 1.0f, dweight, nin);
    if (dbias) {
        for (int o = 0; o < nout; o++) {
            double sum = 0.0;
            for (int i = 0; i < n; i++) sum += dout[(size_t)i * nout + o];
            dbias[o] += (float)sum;
        }
    }
    if (din) {
        /* din [n, nin] (=|+=) dout [n, nout] x W [nout, nin] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, nin, nout, 1.0f, dout, nout, weight, nin,
                    accumulate_din ? 1.0f : 0.0f, din, nin);
    }
}
