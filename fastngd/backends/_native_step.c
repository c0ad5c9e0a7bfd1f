/* The fused update of one work item on the CPU, for float32 operands: one pass that reads
 * p, r, f and the base's state once and writes p (or u and the backup of θ) and the state
 * once, with the products r·u and f·u summed in float64 on the way.
 *
 * Per element, with d = w_R·r − w_F·f (the linear combine rule):
 *   sgd:      g = d + wd·p;  u = g
 *   momentum: g = d + wd·p;  b ← β₁·b + g;  u = b
 *   adam:     g = d + wd·p;  m ← β₁·m + (1 − β₁)·g;  v ← β₂·v + (1 − β₂)·g²;
 *             u = k·m / (√v + ε√bc₂),  k = √bc₂ / bc₁   (= (m/bc₁) / (√v/√bc₂ + ε))
 *   adamw:    g = d;  m, v as adam;  u = k·m / (√v + ε√bc₂) + wd·p
 * then either p ← p − lr·u (u_out and backup_out NULL), or u written to u_out and θ to
 * backup_out (when not NULL), p unchanged. u_out may be r or f, and backup_out f: every
 * element is read before it is written, at the same index, so these aliases are safe (the
 * loops carry no dependence between elements, which `omp simd` asserts).
 *
 * The Python side (fastngd/backends/native.py) only calls this when w_R, w_F, lr and the
 * hyper-parameters are normal float32 numbers (or zero) and the operands are contiguous. */
#include <math.h>
#include <stdint.h>

enum { SGD = 0, MOMENTUM = 1, ADAM = 2, ADAMW = 3 };

/* The end of every element: the products, then the step or the outputs. */
#define FINISH(u)                                                         \
    do {                                                                  \
        dr += (double)ri * (double)(u);                                   \
        df += (double)fi * (double)(u);                                   \
        if (write_p) p[i] = pi - rate * (u);                              \
        else { u_out[i] = (u); if (backup_out) backup_out[i] = pi; }      \
    } while (0)

void fastngd_step_f32(int64_t n, float *p, const float *r, const float *f, float *s1,
                      float *s2, float *u_out, float *backup_out, int kind, double w_r,
                      double w_f, double lr, double wd, double beta1, double beta2,
                      double eps, double bc1, double bc2, double *dots) {
    const float a = (float)w_r, b = (float)w_f, rate = (float)lr, decay = (float)wd;
    const float b1 = (float)beta1, b2 = (float)beta2;
    const float c1 = (float)(1.0 - beta1), c2 = (float)(1.0 - beta2);
    const float k = (float)(sqrt(bc2) / bc1), eroot = (float)(eps * sqrt(bc2));
    const int write_p = u_out == 0;
    double dr = 0.0, df = 0.0;
    switch (kind) {
    case SGD:
#pragma omp simd reduction(+ : dr, df)
        for (int64_t i = 0; i < n; ++i) {
            const float ri = r[i], fi = f[i], pi = p[i];
            const float u = a * ri - b * fi + decay * pi;
            FINISH(u);
        }
        break;
    case MOMENTUM:
#pragma omp simd reduction(+ : dr, df)
        for (int64_t i = 0; i < n; ++i) {
            const float ri = r[i], fi = f[i], pi = p[i];
            const float u = b1 * s1[i] + (a * ri - b * fi + decay * pi);
            s1[i] = u;
            FINISH(u);
        }
        break;
    case ADAM:
    case ADAMW: {
        const float l2 = kind == ADAM ? decay : 0.0f, dw = kind == ADAMW ? decay : 0.0f;
#pragma omp simd reduction(+ : dr, df)
        for (int64_t i = 0; i < n; ++i) {
            const float ri = r[i], fi = f[i], pi = p[i];
            const float g = a * ri - b * fi + l2 * pi;
            const float m = b1 * s1[i] + c1 * g;
            const float v = b2 * s2[i] + c2 * (g * g);
            s1[i] = m;
            s2[i] = v;
            const float u = k * m / (sqrtf(v) + eroot) + dw * pi;
            FINISH(u);
        }
        break;
    }
    default:
        break;
    }
    dots[0] = dr;
    dots[1] = df;
}

/* [r·r, f·f, r·f] of one float32 item in one pass, summed in float32 like a BLAS dot (the
 * caller recomputes in float64 a row that is not finite or too small to be exact, as for
 * the torch ops: fastngd/backends/_fused.py). */
void fastngd_gram_f32(int64_t n, const float *r, const float *f, double *out) {
    float rr = 0.0f, ff = 0.0f, rf = 0.0f;
#pragma omp simd reduction(+ : rr, ff, rf)
    for (int64_t i = 0; i < n; ++i) {
        const float ri = r[i], fi = f[i];
        rr += ri * ri;
        ff += fi * fi;
        rf += ri * fi;
    }
    out[0] = rr;
    out[1] = ff;
    out[2] = rf;
}
