// Kernels of tnml's CUDA path, compiled at run time by NVRTC (no nvcc at build time).
// All matrices are row-major, f32, with per-row log-scales in f64, as in the CPU passes
// (crates/tnml-mps/src/gradient/pass.rs); each kernel is the CPU function of the same name.

#define LN2 0.69314718055994530942

// out[k][i][s] = feats[k][idx[i]][s] for every site k: the batch's features, site-major.
extern "C" __global__ void gather(float* out, const float* feats, const int* idx,
                                  int sites, int samples, int n, int d) {
    long long total = (long long)sites * n * d;
    for (long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x; t < total;
         t += (long long)gridDim.x * blockDim.x) {
        int s = (int)(t % d);
        long long r = t / d;
        int i = (int)(r % n);
        int k = (int)(r / n);
        out[t] = feats[((long long)k * samples + idx[i]) * d + s];
    }
}

// out[i, b] = sum_s phi[i, s] t[i, s w + b]  (t is n x (d w))
extern "C" __global__ void combine(float* out, const float* t, const float* phi,
                                   int n, int d, int w) {
    long long total = (long long)n * w;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        int b = (int)(e % w);
        long long i = e / w;
        const float* ti = t + i * d * w;
        const float* p = phi + i * d;
        float acc = p[0] * ti[b];
        for (int s = 1; s < d; ++s) acc += p[s] * ti[(long long)s * w + b];
        out[e] = acc;
    }
}

// out[i, s w + b] = phi[i, s] v[i, b]
extern "C" __global__ void outer(float* out, const float* phi, const float* v,
                                 int n, int d, int w) {
    long long total = (long long)n * d * w;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        int b = (int)(e % w);
        long long r = e / w;
        int s = (int)(r % d);
        long long i = r / d;
        out[e] = phi[i * d + s] * v[i * w + b];
    }
}

// Each row of width w scaled by a power of two to a norm in [1, 2), e ln 2 added to its log;
// rows whose squared norm is not a normal f32 are scaled to unit norm in f64; a zero row gets
// log = -inf. One block per row; blockDim.x a power of two <= 256.
extern "C" __global__ void normalize(float* v, double* log, int n, int w) {
    __shared__ float part[256];
    __shared__ double part64[256];
    __shared__ float scale;
    __shared__ int slow;
    int i = blockIdx.x;
    if (i >= n) return;
    float* row = v + (long long)i * w;
    float acc = 0.0f;
    for (int b = threadIdx.x; b < w; b += blockDim.x) acc += row[b] * row[b];
    part[threadIdx.x] = acc;
    __syncthreads();
    for (int h = blockDim.x / 2; h > 0; h >>= 1) {
        if (threadIdx.x < h) part[threadIdx.x] += part[threadIdx.x + h];
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        float n2 = part[0];
        slow = 0;
        scale = 1.0f;
        if (n2 >= 1.17549435e-38f && n2 <= 3.40282347e38f) {
            int e = (int)((__float_as_uint(n2) >> 23) & 0xff) - 127;
            int half = e >= 0 ? e / 2 : -((-e + 1) / 2);  // floor(e / 2)
            if (half != 0) {
                scale = __uint_as_float((unsigned)(127 - half) << 23);
                log[i] += (double)half * LN2;
            }
        } else {
            slow = 1;
        }
    }
    __syncthreads();
    if (!slow) {
        if (scale != 1.0f)
            for (int b = threadIdx.x; b < w; b += blockDim.x) row[b] *= scale;
        return;
    }
    double acc64 = 0.0;
    for (int b = threadIdx.x; b < w; b += blockDim.x) acc64 += (double)row[b] * (double)row[b];
    part64[threadIdx.x] = acc64;
    __syncthreads();
    for (int h = blockDim.x / 2; h > 0; h >>= 1) {
        if (threadIdx.x < h) part64[threadIdx.x] += part64[threadIdx.x + h];
        __syncthreads();
    }
    double n2 = part64[0];
    if (n2 == 0.0) {
        if (threadIdx.x == 0) log[i] = -1.0 / 0.0;
        return;
    }
    double inv = 1.0 / sqrt(n2);
    for (int b = threadIdx.x; b < w; b += blockDim.x) row[b] = (float)((double)row[b] * inv);
    if (threadIdx.x == 0) log[i] += 0.5 * ::log(n2);
}

// out[i, :] = v[i, :] exp(a[i] + b[i]); a zero entry stays zero whatever the scale.
extern "C" __global__ void scale_rows(float* out, const float* v, int n, int w,
                                      const double* a, const double* b) {
    long long total = (long long)n * w;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        long long i = e / w;
        float s = (float)exp(a[i] + b[i]);
        float x = v[e];
        out[e] = isfinite(s) ? x * s : (x == 0.0f ? 0.0f : x * s);
    }
}

// The label site, one thread per sample: scores f[l] = e^(sigma_i) <u[i, l, :], rc[i, :]>
// (sigma_i = left_log[i] + right_log[i]), the loss, the prediction, and delta = dLoss/df / batch.
// loss_kind 0: cross-entropy (decision argmax f), 1: squared (decision argmax |f|).
// At most 64 labels (checked by the host).
extern "C" __global__ void label_head(float* delta, double* sigma, double* loss_out, int* wrong,
                                      const float* u, const float* rc, const double* left_log,
                                      const double* right_log, const int* labels, int n, int nl,
                                      int cr, int loss_kind, int batch) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    double f[64];
    double sg = left_log[i] + right_log[i];
    sigma[i] = sg;
    double e = exp(sg);
    const float* ri = rc + (long long)i * cr;
    for (int l = 0; l < nl; ++l) {
        const float* ui = u + ((long long)i * nl + l) * cr;
        double dot = 0.0;
        for (int b = 0; b < cr; ++b) dot += (double)ui[b] * (double)ri[b];
        f[l] = dot * e;
    }
    int y = labels[i];
    int pick = 0;
    double best = -1.0 / 0.0;
    for (int l = 0; l < nl; ++l) {
        double key = loss_kind == 1 ? fabs(f[l]) : f[l];
        if (key > best) { best = key; pick = l; }
    }
    wrong[i] = pick != y;
    double loss = 0.0;
    float* dl = delta + (long long)i * nl;
    if (loss_kind == 0) {
        double m = -1.0 / 0.0;
        for (int l = 0; l < nl; ++l) m = fmax(m, f[l]);
        double z = 0.0;
        for (int l = 0; l < nl; ++l) z += exp(f[l] - m);
        loss = -(f[y] - m - ::log(z));
        for (int l = 0; l < nl; ++l) {
            double p = exp(f[l] - m) / z;
            dl[l] = (float)((p - (l == y ? 1.0 : 0.0)) / (double)batch);
        }
    } else {
        for (int l = 0; l < nl; ++l) {
            double r = f[l] - (l == y ? 1.0 : 0.0);
            loss += 0.5 * r * r;
            dl[l] = (float)(r / (double)batch);
        }
    }
    loss_out[i] = loss;
}

// h[i, b] = sum_l delta[i, l] u[i, l, b]: the gradient entering the right wing.
extern "C" __global__ void label_carry(float* h, const float* delta, const float* u,
                                       int n, int nl, int cr) {
    long long total = (long long)n * cr;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        int b = (int)(e % cr);
        long long i = e / cr;
        float acc = 0.0f;
        for (int l = 0; l < nl; ++l) acc += delta[i * nl + l] * u[(i * nl + l) * cr + b];
        h[e] = acc;
    }
}

// One Adam step into staged copies (f64 master and its f32 image); m and v in place. The first
// weight that leaves [-max_w, max_w] or is not finite is recorded in *bad (atomicMin of its index).
extern "C" __global__ void adam(double* staged, float* staged32, double* m, double* v,
                                const double* w, const float* g, long long len, double lr,
                                double c1, double c2, double b1, double b2, double eps,
                                double max_w, long long* bad) {
    for (long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x; t < len;
         t += (long long)gridDim.x * blockDim.x) {
        double gi = (double)g[t];
        double mi = b1 * m[t] + (1.0 - b1) * gi;
        double vi = b2 * v[t] + (1.0 - b2) * gi * gi;
        m[t] = mi;
        v[t] = vi;
        double x = w[t] - lr * (mi / c1) / (sqrt(vi / c2) + eps);
        staged[t] = x;
        staged32[t] = (float)x;
        if (!(fabs(x) <= max_w)) atomicMin((unsigned long long*)bad, (unsigned long long)t);
    }
}
