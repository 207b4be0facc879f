/* One-pass kernels of the weighted sigmoid cross-entropy (the NumPy engine's fast path
 * for float32 and float64 chunks; see wce_xp/_native/_numpy.py).
 *
 * The NumPy engine's ufunc kernels evaluate the loss as about twelve passes per chunk;
 * this file makes one pass per chunk. float32 is computed in double precision and
 * rounded once (float64 below, after the float32 functions):
 *
 *     L = c*|x| + l*log1p(exp(-|x|)),  c = q*z where x < 0 else 1 - z,  l = q*z + 1 - z
 *
 * with c*|x| taken as 0 where c == 0 (the limit at infinite logits). exp and log1p are
 * written here as polynomials (no libm calls), so that the loop vectorizes without
 * -ffast-math, whose assumptions (no NaN, no infinity) this loss does not meet:
 *   exp(t), t in [-200, 0]: t = k*ln2 + r, |r| <= ln2/2, a degree-11 Taylor polynomial
 *     (relative error < 1e-14), 2^k built from its bits. Below -200 the term is under
 *     1e-86 and cannot reach a float32 result (l*L < 3.4e38 * 1.4e-87 underflows).
 *   log1p(e), e in [0, 1]: above sqrt(2) - 1, log1p(e) = ln2 + log1p((e - 1)/2); then
 *     log1p(u) = 2*atanh(s), s = u/(2 + u), |s| <= 0.172, seven terms of the series
 *     (relative error < 1e-13).
 * Both errors are some 1e-6 of a float32 ulp: results are the correctly rounded float32
 * of the double-precision value, or one ulp from it (tests/test_backend_numpy.py runs both
 * these kernels and the ufunc ones against mpmath, in float32 and float64).
 *
 * The gradient: g = (1 - z)*sigma(x) - q*z*sigma(-x) = (b - a*e)/(1 + e) for x >= 0
 * and (b*e - a)/(1 + e) for x < 0 (e = exp(-|x|), a = q*z, b = 1 - z), times a scale.
 *
 * Labels have the logits' dtype or are bool: bool labels (and a pos_weight of one
 * value per class) are staged into a block of the logits' dtype first, since a
 * widening conversion inside the vector loop keeps it from vectorizing. NaN logits
 * give NaN; NaN labels propagate by the arithmetic. Each call runs with the GIL
 * released, on up to `threads` threads (see "threads" below).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define WCE_CLONES \
    __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define WCE_CLONES
#endif

/* helpers inlined into each clone (a call would run the default-target copy) */
#if defined(__GNUC__)
#define WCE_INLINE static inline __attribute__((always_inline))
#else
#define WCE_INLINE static inline
#endif

static const double INV_LN2 = 1.4426950408889634;
static const double LN2_HI = 6.93147180369123816490e-01;
static const double LN2_LO = 1.90821492927058770002e-10;
static const double LN2 = 0.6931471805599453;
static const double SHIFT = 6755399441055744.0; /* 1.5 * 2^52: adds round to integer */
static const double SQRT2_M1 = 0.41421356237309503;

static inline uint64_t as_bits(double d) { uint64_t u; memcpy(&u, &d, 8); return u; }
static inline double from_bits(uint64_t u) { double d; memcpy(&d, &u, 8); return d; }

/* exp(t) for t <= 0 (t = -|x|, NaN allowed: the caller replaces the result) */
WCE_INLINE double exp_neg(double t)
{
    t = t < -200.0 ? -200.0 : t;
    double kd = t * INV_LN2 + SHIFT;
    uint64_t kb = as_bits(kd);
    kd -= SHIFT;
    double r = (t - kd * LN2_HI) - kd * LN2_LO;
    double p = 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    /* k = kb - bits(SHIFT), in [-289, 0]: 2^k is a normal double */
    int64_t k = (int64_t)(kb - as_bits(SHIFT));
    return p * from_bits((uint64_t)(k + 1023) << 52);
}

/* log1p(e) for e in [0, 1] */
WCE_INLINE double log1p_unit(double e)
{
    int big = e > SQRT2_M1;
    double u = big ? (e - 1.0) * 0.5 : e;
    double s = u / (2.0 + u);
    double s2 = s * s;
    double p = 1.0 / 15.0;
    p = p * s2 + 1.0 / 13.0;
    p = p * s2 + 1.0 / 11.0;
    p = p * s2 + 1.0 / 9.0;
    p = p * s2 + 1.0 / 7.0;
    p = p * s2 + 1.0 / 5.0;
    p = p * s2 + 1.0 / 3.0;
    p = p * s2 + 1.0;
    double v = 2.0 * s * p;
    return big ? v + LN2 : v;
}

/* One element's loss and gradient, given the exp and log1p to use: */
#define DEFINE_ONE(SFX, EXP, LOG1P)                                                       \
WCE_INLINE double loss_one##SFX(double x, double z, double q)                             \
{                                                                                         \
    double ax = x < 0.0 ? -x : x;                                                         \
    double e = EXP(-ax);                                                                  \
    double lg = LOG1P(e);                                                                 \
    double a = q * z, b = 1.0 - z;                                                        \
    double c = x < 0.0 ? a : b;                                                           \
    double lin = c == 0.0 ? 0.0 : c * ax;                                                 \
    double v = lin + (a + b) * lg;                                                        \
    return x != x ? x : v;                                                                \
}                                                                                         \
                                                                                          \
WCE_INLINE double grad_one##SFX(double x, double z, double q)                             \
{                                                                                         \
    double ax = x < 0.0 ? -x : x;                                                         \
    double e = EXP(-ax);                                                                  \
    double a = q * z, b = 1.0 - z;                                                        \
    double num = x < 0.0 ? b * e - a : b - a * e;                                         \
    double g = num / (1.0 + e);                                                           \
    return x != x ? x : g;                                                                \
}

DEFINE_ONE(, exp_neg, log1p_unit)

/* float64: the same formulas with exp and log1p accurate to double precision (measured
 * against mpmath: exp within 1.1 ulp, log1p within 1.9, the loss within 2.2 over
 * tests/_reference.py's accuracy grid; the library's bound is 4):
 *   exp(t), t in [-746, 0]: a degree-13 Taylor polynomial (truncation < 5e-18), 2^k
 *     applied as 2^(k+600) * 2^-600 so that subnormal results round once;
 *   log1p(e): ten terms of the atanh series (truncation < 1e-18), ln2 added as two
 *     parts. */
WCE_INLINE double exp_neg_d(double t)
{
    t = t < -746.0 ? -746.0 : t;
    double kd = t * INV_LN2 + SHIFT;
    uint64_t kb = as_bits(kd);
    kd -= SHIFT;
    double r = (t - kd * LN2_HI) - kd * LN2_LO;
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    int64_t k = (int64_t)(kb - as_bits(SHIFT)); /* in [-1077, 0] */
    return (p * from_bits((uint64_t)(k + 600 + 1023) << 52)) * 0x1p-600;
}

WCE_INLINE double log1p_unit_d(double e)
{
    int big = e > SQRT2_M1;
    double u = big ? (e - 1.0) * 0.5 : e;
    double s = u / (2.0 + u);
    double s2 = s * s;
    double p = 1.0 / 21.0;
    p = p * s2 + 1.0 / 19.0;
    p = p * s2 + 1.0 / 17.0;
    p = p * s2 + 1.0 / 15.0;
    p = p * s2 + 1.0 / 13.0;
    p = p * s2 + 1.0 / 11.0;
    p = p * s2 + 1.0 / 9.0;
    p = p * s2 + 1.0 / 7.0;
    p = p * s2 + 1.0 / 5.0;
    p = p * s2 + 1.0 / 3.0;
    double v = 2.0 * s + 2.0 * s * (s2 * p);
    v = e < 0x1p-60 ? e : v; /* log1p(e) = e to double precision; s = e/2 would drop a
                                subnormal's last bit */
    return big ? (v + LN2_LO) + LN2_HI : v;
}

DEFINE_ONE(_d, exp_neg_d, log1p_unit_d)

/* The loops. q is the number q, or qa[i] where qa (one per element) is given. Every
 * element goes through the same fixed-length block of VB elements (a tail is padded):
 * a loop of constant length compiles to vector code with no scalar remainder, so an
 * element's bits (the compiler may fuse multiply-adds) do not depend on where it sits
 * in a chunk, a Dask block or an array. */
#define VB 256
#define BLOCK 512 /* losses summed per stack buffer: a multiple of VB */

/* a loop over one block with the element's x, z and q at hand; each case its own loop
 * (branches outside the loops, so that each vectorizes) */
#define VB_LOOP(QK, BODY)                                                                 \
    for (int k = 0; k < VB; k++) {                                                        \
        double xk = (double)x[k], zk = (double)z[k], qk = (double)(QK);                   \
        BODY;                                                                             \
    }

#define DEFINE_KERNELS(T, SFX, ONE_LOSS, ONE_GRAD)                                        \
/* One block of VB elements: the loss into out and/or the gradient times scale into      \
 * gout (either may be NULL; with both, exp(-|x|) is computed once for the two). */      \
WCE_INLINE void vb_##SFX(const T *x, const T *z, double q, const T *qa, double scale,     \
                         T *out, T *gout)                                                 \
{                                                                                         \
    if (out && gout) {                                                                    \
        if (qa) VB_LOOP(qa[k], out[k] = (T)ONE_LOSS(xk, zk, qk);                          \
                        gout[k] = (T)(ONE_GRAD(xk, zk, qk) * scale))                      \
        else VB_LOOP(q, out[k] = (T)ONE_LOSS(xk, zk, qk);                                 \
                     gout[k] = (T)(ONE_GRAD(xk, zk, qk) * scale))                         \
    } else if (out) {                                                                     \
        if (qa) VB_LOOP(qa[k], out[k] = (T)ONE_LOSS(xk, zk, qk))                          \
        else VB_LOOP(q, out[k] = (T)ONE_LOSS(xk, zk, qk))                                 \
    } else {                                                                              \
        if (qa) VB_LOOP(qa[k], gout[k] = (T)(ONE_GRAD(xk, zk, qk) * scale))               \
        else VB_LOOP(q, gout[k] = (T)(ONE_GRAD(xk, zk, qk) * scale))                      \
    }                                                                                     \
}                                                                                         \
                                                                                          \
/* the whole blocks, then the tail through a zero-padded block */                         \
WCE_INLINE void run_##SFX(const T *x, const T *z, double q, const T *qa, double scale,    \
                          T *out, T *gout, Py_ssize_t n)                                  \
{                                                                                         \
    Py_ssize_t i = 0;                                                                     \
    for (; i + VB <= n; i += VB)                                                          \
        vb_##SFX(x + i, z + i, q, qa ? qa + i : NULL, scale, out ? out + i : NULL,        \
                 gout ? gout + i : NULL);                                                 \
    if (i < n) {                                                                          \
        T xt[VB] = {0}, zt[VB] = {0}, qt[VB] = {0}, ot[VB], gt[VB];                       \
        size_t m = (size_t)(n - i) * sizeof(T);                                           \
        memcpy(xt, x + i, m);                                                             \
        memcpy(zt, z + i, m);                                                             \
        if (qa) memcpy(qt, qa + i, m);                                                    \
        vb_##SFX(xt, zt, q, qa ? qt : NULL, scale, out ? ot : NULL, gout ? gt : NULL);    \
        if (out) memcpy(out + i, ot, m);                                                  \
        if (gout) memcpy(gout + i, gt, m);                                                \
    }                                                                                     \
}                                                                                         \
                                                                                          \
/* One span [lo, hi) of a job (see Job below), in blocks of BLOCK elements: bool labels  \
 * and a pos_weight given per class (a period that divides n) are staged block by block  \
 * into buffers of the logits' dtype, so that every element runs through the same code  \
 * (the same bits) however its operands came. With sums, the float64 sum of the losses  \
 * as the elementwise call returns them (float32 ones rounded first), the losses kept    \
 * on the stack unless out is given, added into eight float64 lanes (independent lanes  \
 * vectorize without reassociating a sum). */                                             \
WCE_CLONES static double span_##SFX(const struct Job *j, Py_ssize_t lo, Py_ssize_t hi)    \
{                                                                                         \
    const T *x = (const T *)j->x, *z = (const T *)j->z, *qa = (const T *)j->qa;           \
    const unsigned char *zb = (const unsigned char *)j->z;                                \
    T *out = (T *)j->out, *gout = (T *)j->gout;                                           \
    T zt[BLOCK], qt[BLOCK], v[BLOCK];                                                     \
    double acc[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0}, tail = 0.0;                 \
    for (Py_ssize_t i = lo; i < hi; i += BLOCK) {                                         \
        Py_ssize_t m = hi - i < BLOCK ? hi - i : BLOCK, j8 = 0;                           \
        const T *zi = z + i, *qi = NULL;                                                  \
        if (j->zbool) {                                                                   \
            for (Py_ssize_t k = 0; k < m; k++)                                            \
                zt[k] = (T)(zb[i + k] != 0);                                              \
            zi = zt;                                                                      \
        }                                                                                 \
        if (qa && j->qn == j->n) {                                                        \
            qi = qa + i;                                                                  \
        } else if (qa) {                                                                  \
            Py_ssize_t r = i % j->qn;                                                     \
            for (Py_ssize_t k = 0; k < m; k++) {                                          \
                qt[k] = qa[r];                                                            \
                r = r + 1 == j->qn ? 0 : r + 1;                                           \
            }                                                                             \
            qi = qt;                                                                      \
        }                                                                                 \
        T *oi = out ? out + i : (j->sums ? v : NULL);                                     \
        run_##SFX(x + i, zi, j->q, qi, j->scale, oi, gout ? gout + i : NULL, m);          \
        if (!j->sums)                                                                     \
            continue;                                                                     \
        for (; j8 + 8 <= m; j8 += 8)                                                      \
            for (int k = 0; k < 8; k++)                                                   \
                acc[k] += (double)oi[j8 + k];                                             \
        for (; j8 < m; j8++)                                                              \
            tail += (double)oi[j8];                                                       \
    }                                                                                     \
    return (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))) \
           + tail;                                                                        \
}

/* A job: the loss into out and/or the gradient times scale into gout and/or the sum of
 * the losses, over n elements (C-contiguous; labels of the logits' dtype or bool;
 * pos_weight a number q, or qa of qn elements, one per element (qn = n) or one per
 * class of the last axis (qn divides n)). */
struct Job {
    const void *x, *z, *qa;
    void *out, *gout;
    double q, scale;
    Py_ssize_t n, qn;
    int dbl, zbool, sums;
};

DEFINE_KERNELS(float, f, loss_one, grad_one)
DEFINE_KERNELS(double, d, loss_one_d, grad_one_d)

static double span(const struct Job *j, Py_ssize_t lo, Py_ssize_t hi)
{
    return j->dbl ? span_d(j, lo, hi) : span_f(j, lo, hi);
}

/* --- threads ------------------------------------------------------------------------
 *
 * A job is cut into tasks of TASK elements, which every thread taking part (the caller
 * and up to threads - 1 helpers) takes in turn from one atomic counter until none is
 * left. Sums: each task's sum goes into its slot, and the slots are added in task order
 * (in groups of GROUP tasks, the NumPy engine's chunk of 64K elements, then the groups
 * in order: the same association as the engine's chunked route), so the result does
 * not depend on the number of threads or on which thread ran which task.
 *
 * The helpers are POSIX threads started on first use and kept: after a job each spins
 * (about SPIN_NS) for the next one, then sleeps on a condition variable. So a training
 * loop's next call finds them awake (starting or waking a thread costs tens of
 * microseconds, which is what a 1e5-element call takes in all), and an idle process
 * keeps no core busy. One job at a time: a call made while another runs (another
 * Python thread) runs on its caller alone. Elsewhere than POSIX, jobs run on the
 * caller. */
#define TASK 2048  /* a multiple of BLOCK: about 4 us of work */
#define GROUP 32   /* tasks per chunk of the NumPy engine: 64K elements */

static Py_ssize_t tasks_of(Py_ssize_t n) { return (n + TASK - 1) / TASK; }

/* task t of a job, its sum into parts[t] (where sums are wanted) */
static void run_task(const struct Job *j, Py_ssize_t t, double *parts)
{
    Py_ssize_t lo = t * TASK, hi = lo + TASK < j->n ? lo + TASK : j->n;
    double s = span(j, lo, hi);
    if (parts) parts[t] = s;
}

static void run_serial(const struct Job *j, Py_ssize_t ntasks, double *parts)
{
    for (Py_ssize_t t = 0; t < ntasks; t++)
        run_task(j, t, parts);
}

#if !defined(_WIN32) && !defined(__STDC_NO_ATOMICS__) && !defined(__STDC_NO_THREADS__)
#define WCE_POOL 1
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define MAX_HELPERS 255
#define SPIN_NS 200000

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

/* the job's state in one word, so that a helper reads it whole: generation (bits
 * 32-63), helpers allowed (16-23), open (15), helpers inside it (0-14) */
#define ST_GEN(s) ((uint32_t)((s) >> 32))
#define ST_LIMIT(s) ((int)(((s) >> 16) & 0xFF))
#define ST_OPEN ((uint64_t)1 << 15)
#define ST_ACTIVE(s) ((int)((s) & 0x7FFF))

static struct {
    struct Job job;
    Py_ssize_t ntasks;
    double *parts;
    _Atomic Py_ssize_t next;
    _Atomic uint64_t state;
    pthread_mutex_t busy; /* one job at a time */
    pthread_mutex_t mu;   /* sleeping helpers */
    pthread_cond_t cv;
    int sleeping, started;
} pool = {.busy = PTHREAD_MUTEX_INITIALIZER, .mu = PTHREAD_MUTEX_INITIALIZER,
          .cv = PTHREAD_COND_INITIALIZER};

/* take the next task from *next until none is left */
static void take(const struct Job *j, Py_ssize_t ntasks, double *parts,
                 _Atomic Py_ssize_t *next)
{
    for (Py_ssize_t t; (t = atomic_fetch_add(next, 1)) < ntasks;)
        run_task(j, t, parts);
}

static void take_tasks(void) { take(&pool.job, pool.ntasks, pool.parts, &pool.next); }

/* OpenMP's team instead of the pool: GOMP_parallel of the OpenMP runtime that PyTorch
 * loaded (use_openmp gives its address). PyTorch's OpenMP threads spin for a while after
 * each of its parallel operations; a second pool of threads would then share the cores
 * with them (BENCHMARKS.md, "Private internals"). In PyTorch's team they take the tasks
 * themselves. */
typedef void (*gomp_parallel_t)(void (*)(void *), void *, unsigned, unsigned);
static _Atomic(gomp_parallel_t) omp_parallel = NULL;

struct OmpJob {
    const struct Job *j;
    Py_ssize_t ntasks;
    double *parts;
    _Atomic Py_ssize_t next;
};

static void omp_body(void *arg)
{
    struct OmpJob *o = (struct OmpJob *)arg;
    take(o->j, o->ntasks, o->parts, &o->next);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *helper(void *arg)
{
    int id = (int)(intptr_t)arg;
    uint32_t seen = ST_GEN(atomic_load(&pool.state));
    for (;;) {
        uint64_t s = atomic_load(&pool.state);
        if (ST_GEN(s) == seen) { /* wait: spin a while, then sleep */
            uint64_t until = now_ns() + SPIN_NS;
            for (int k = 1; ST_GEN(s = atomic_load(&pool.state)) == seen; k++) {
                CPU_RELAX();
                if ((k & 63) == 0 && now_ns() > until) {
                    pthread_mutex_lock(&pool.mu);
                    pool.sleeping++;
                    while (ST_GEN(s = atomic_load(&pool.state)) == seen)
                        pthread_cond_wait(&pool.cv, &pool.mu);
                    pool.sleeping--;
                    pthread_mutex_unlock(&pool.mu);
                    break;
                }
            }
        }
        seen = ST_GEN(s);
        if (id >= ST_LIMIT(s)) continue;
        /* join if the job is still open and still this generation */
        for (;;) {
            if (ST_GEN(s) != seen || !(s & ST_OPEN)) break;
            if (atomic_compare_exchange_weak(&pool.state, &s, s + 1)) {
                take_tasks();
                atomic_fetch_sub(&pool.state, 1);
                break;
            }
        }
    }
    return NULL;
}

static void after_fork_child(void)
{
    /* the helpers did not survive fork(): start afresh, on this module's own threads
     * (an OpenMP runtime used before fork() hangs in the child: libgomp keeps its team) */
    atomic_store(&omp_parallel, NULL);
    pthread_mutex_init(&pool.busy, NULL);
    pthread_mutex_init(&pool.mu, NULL);
    pthread_cond_init(&pool.cv, NULL);
    pool.sleeping = pool.started = 0;
    atomic_store(&pool.state, 0);
}

/* run the job on `threads` (>= 2) threads, the caller one of them; 0, or -1 where the
 * pool is busy or no helper could be started (the caller then runs it alone) */
static int run_pooled(const struct Job *j, Py_ssize_t ntasks, double *parts, int threads)
{
    int want = threads - 1 > MAX_HELPERS ? MAX_HELPERS : threads - 1;
    if (pthread_mutex_trylock(&pool.busy) != 0) return -1;
    while (pool.started < want) {
        pthread_t th;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int err = pthread_create(&th, &attr, helper, (void *)(intptr_t)pool.started);
        pthread_attr_destroy(&attr);
        if (err) break;
        pool.started++;
    }
    if (want > pool.started) want = pool.started;
    if (want < 1) {
        pthread_mutex_unlock(&pool.busy);
        return -1;
    }
    pool.job = *j;
    pool.ntasks = ntasks;
    pool.parts = parts;
    atomic_store(&pool.next, 0);
    uint64_t gen = (uint64_t)(ST_GEN(atomic_load(&pool.state)) + 1u);
    atomic_store(&pool.state, (gen << 32) | ((uint64_t)want << 16) | ST_OPEN);
    pthread_mutex_lock(&pool.mu);
    if (pool.sleeping) pthread_cond_broadcast(&pool.cv);
    pthread_mutex_unlock(&pool.mu);
    take_tasks();
    /* close the job, then wait for the helpers inside it */
    uint64_t s = atomic_fetch_and(&pool.state, ~ST_OPEN) & ~ST_OPEN;
    while (ST_ACTIVE(s)) {
        CPU_RELAX();
        s = atomic_load(&pool.state);
    }
    pthread_mutex_unlock(&pool.busy);
    return 0;
}
#else
#define WCE_POOL 0
#endif

/* the job on up to `threads` threads; with sums, their total */
static double run_job(const struct Job *j, int threads, double *parts)
{
    Py_ssize_t ntasks = tasks_of(j->n);
    if (threads > ntasks / 2) /* two tasks a thread at least: a start costs about one */
        threads = (int)(ntasks / 2);
#if WCE_POOL
    gomp_parallel_t omp = atomic_load(&omp_parallel);
    if (threads >= 2 && omp) {
        struct OmpJob o = {j, ntasks, parts, 0};
        omp(omp_body, &o, (unsigned)threads, 0);
    } else if (threads < 2 || run_pooled(j, ntasks, parts, threads) < 0) {
        run_serial(j, ntasks, parts);
    }
#else
    (void)threads;
    run_serial(j, ntasks, parts);
#endif
    if (!parts) return 0.0;
    double total = 0.0;
    for (Py_ssize_t g = 0; g < ntasks; g += GROUP) {
        double chunk = 0.0;
        for (Py_ssize_t t = g; t < ntasks && t < g + GROUP; t++)
            chunk += parts[t];
        total += chunk;
    }
    return total;
}

/* --- Python glue ------------------------------------------------------------------ */

/* C-contiguous buffers of logits (float32 or float64), labels (the logits' dtype or
 * bool), pos_weight (unless a number: the logits' dtype, one per element or one per
 * class: a length that divides theirs) and outputs of the logits' dtype and length;
 * anything else raises (the caller checks first, and these messages name what it
 * missed). */
typedef struct {
    Py_buffer x, z, q, out, gout;
    struct Job job;
    int threads;
} Bufs;

static void release(Bufs *b)
{
    Py_buffer *all[] = {&b->x, &b->z, &b->q, &b->out, &b->gout};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (all[i]->obj) PyBuffer_Release(all[i]);
}

/* Whether a buffer format is the type code c in native byte order: "d", or with a
 * prefix that says native ("@", "=", or the explicit order of this machine: "=d"
 * comes from arrays that Dask's workers deserialize). */
static int fmt_is(const char *fmt, char c)
{
    if (fmt == NULL) return c == 'B';
    if (fmt[0] == '@' || fmt[0] == '=')
        fmt++;
#if PY_LITTLE_ENDIAN
    else if (fmt[0] == '<')
        fmt++;
#else
    else if (fmt[0] == '>' || fmt[0] == '!')
        fmt++;
#endif
    return fmt[0] == c && fmt[1] == '\0';
}

static int like_x(Bufs *b, Py_buffer *v, const char *name, int period)
{
    Py_ssize_t m = v->len / (v->itemsize ? v->itemsize : 1);
    if (!fmt_is(v->format, b->job.dbl ? 'd' : 'f') || v->itemsize != b->x.itemsize) {
        PyErr_Format(PyExc_TypeError, "%s: expected %s, as x", name,
                     b->job.dbl ? "float64" : "float32");
        return -1;
    }
    if (period ? (m == 0 ? b->job.n != 0 : b->job.n % m != 0) : m != b->job.n) {
        PyErr_Format(PyExc_ValueError, "%s: expected as many elements as x%s", name,
                     period ? ", or a number of them that divides x's (one per class)" : "");
        return -1;
    }
    return 0;
}

static int get_int(PyObject *o, const char *name, int *v)
{
    long n = PyLong_AsLong(o);
    if (n == -1 && PyErr_Occurred()) return -1;
    if (n < 1) {
        PyErr_Format(PyExc_ValueError, "%s: expected a positive integer", name);
        return -1;
    }
    *v = n > 4096 ? 4096 : (int)n;
    return 0;
}

/* The arguments (x, z, q[, scale][, out][, gout][, threads]): which of the optional
 * ones a function takes is given by its flags. */
#define A_SCALE 1
#define A_OUT 2
#define A_GOUT 4
#define A_SUM 8

/* An input operand: an object with the buffer protocol, or a tuple (address, n, code)
 * that describes n elements of type code ("f", "d" or "?") at a C-contiguous address
 * (PyTorch's CPU tensors, which have no buffer protocol: their NumPy views cost 1-2 us
 * a call). The caller vouches for the memory; its length is checked like a buffer's.
 * A view filled from a tuple has no obj, so release() leaves it. */
static int get_input(PyObject *o, Py_buffer *v)
{
    if (!PyTuple_Check(o))
        return PyObject_GetBuffer(o, v, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT);
    PyObject *addr, *count;
    const char *code;
    if (!PyArg_ParseTuple(o, "OOs", &addr, &count, &code)) return -1;
    void *p = PyLong_AsVoidPtr(addr);
    Py_ssize_t n = PyLong_AsSsize_t(count);
    if (PyErr_Occurred()) return -1;
    Py_ssize_t size = !strcmp(code, "d") ? 8 : !strcmp(code, "f") ? 4 : !strcmp(code, "?") ? 1 : 0;
    if (!size || n < 0 || (p == NULL && n > 0)) {
        PyErr_SetString(PyExc_ValueError,
                        "expected (address, n, code) with code 'f', 'd' or '?' and n >= 0");
        return -1;
    }
    memset(v, 0, sizeof(*v));
    v->buf = p;
    v->len = n * size;
    v->itemsize = size;
    v->readonly = 1;
    v->format = size == 8 ? "d" : size == 4 ? "f" : "?";
    return 0;
}

static int get_bufs(Bufs *b, PyObject *const *args, Py_ssize_t nargs, int flags,
                    const char *sig)
{
    const int ro = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT;
    Py_ssize_t need = 3 + !!(flags & A_SCALE) + !!(flags & A_OUT) + !!(flags & A_GOUT), i = 3;
    memset(b, 0, sizeof(*b));
    b->threads = 1;
    b->job.scale = 1.0;
    b->job.sums = !!(flags & A_SUM);
    if (nargs != need && nargs != need + 1) {
        PyErr_SetString(PyExc_TypeError, sig);
        return -1;
    }
    if (nargs == need + 1 && get_int(args[need], "threads", &b->threads) < 0) return -1;
    PyObject *q = args[2];
    if (PyFloat_Check(q) || PyLong_Check(q)) {
        b->job.q = PyFloat_AsDouble(q);
        if (b->job.q == -1.0 && PyErr_Occurred()) return -1;
    }
    if (flags & A_SCALE) {
        b->job.scale = PyFloat_AsDouble(args[i++]);
        if (b->job.scale == -1.0 && PyErr_Occurred()) return -1;
    }
    if (get_input(args[0], &b->x) < 0) return -1;
    if (fmt_is(b->x.format, 'd') && b->x.itemsize == 8) {
        b->job.dbl = 1;
    } else if (!fmt_is(b->x.format, 'f') || b->x.itemsize != 4) {
        PyErr_SetString(PyExc_TypeError, "x: expected float32 or float64");
        goto fail;
    }
    b->job.n = b->x.len / b->x.itemsize;
    if (get_input(args[1], &b->z) < 0) goto fail;
    if (fmt_is(b->z.format, '?') && b->z.itemsize == 1) {
        b->job.zbool = 1;
        if (b->z.len != b->job.n) {
            PyErr_SetString(PyExc_ValueError, "z: expected as many elements as x");
            goto fail;
        }
    } else if (like_x(b, &b->z, "z", 0) < 0) {
        goto fail;
    }
    if (!(PyFloat_Check(q) || PyLong_Check(q))) {
        if (get_input(q, &b->q) < 0 || like_x(b, &b->q, "q", 1) < 0) goto fail;
        b->job.qa = b->q.buf;
        b->job.qn = b->q.len / b->q.itemsize;
    }
    if (flags & A_OUT) {
        if (PyObject_GetBuffer(args[i++], &b->out, ro | PyBUF_WRITABLE) < 0 ||
            like_x(b, &b->out, "out", 0) < 0)
            goto fail;
        b->job.out = b->out.buf;
    }
    if (flags & A_GOUT) {
        if (PyObject_GetBuffer(args[i++], &b->gout, ro | PyBUF_WRITABLE) < 0 ||
            like_x(b, &b->gout, "gout", 0) < 0)
            goto fail;
        b->job.gout = b->gout.buf;
    }
    b->job.x = b->x.buf;
    b->job.z = b->z.buf;
    return 0;
fail:
    release(b);
    return -1;
}

/* the job of one call, the GIL released; with sums, their total as a float */
static PyObject *call(PyObject *const *args, Py_ssize_t nargs, int flags, const char *sig)
{
    Bufs b;
    double total = 0.0, *parts = NULL;
    if (get_bufs(&b, args, nargs, flags, sig) < 0) return NULL;
    if (flags & A_SUM) {
        Py_ssize_t ntasks = tasks_of(b.job.n);
        parts = (double *)malloc((size_t)(ntasks ? ntasks : 1) * sizeof(double));
        if (!parts) {
            release(&b);
            return PyErr_NoMemory();
        }
    }
    Py_BEGIN_ALLOW_THREADS
    total = run_job(&b.job, b.threads, parts);
    Py_END_ALLOW_THREADS
    free(parts);
    release(&b);
    if (flags & A_SUM) return PyFloat_FromDouble(total);
    Py_RETURN_NONE;
}

#define ENTRY(NAME, FLAGS, SIG)                                                           \
    static PyObject *py_##NAME(PyObject *self, PyObject *const *args, Py_ssize_t nargs)   \
    {                                                                                     \
        (void)self;                                                                       \
        return call(args, nargs, FLAGS, SIG);                                             \
    }

ENTRY(loss, A_OUT, "loss(x, z, q, out[, threads])")
ENTRY(loss_sum, A_SUM, "loss_sum(x, z, q[, threads])")
ENTRY(grad, A_SCALE | A_GOUT, "grad(x, z, q, scale, out[, threads])")
ENTRY(loss_grad, A_SCALE | A_OUT | A_GOUT, "loss_grad(x, z, q, scale, out, gout[, threads])")
ENTRY(loss_sum_grad, A_SUM | A_SCALE | A_GOUT,
      "loss_sum_grad(x, z, q, scale, gout[, threads])")

/* within(a, lo, hi) -> bool: whether every element of a (C-contiguous float32, float64
 * or bool) lies in [lo, hi]; NaN does not. The value checks of the fast lanes
 * (labels in [0, 1], pos_weight in [0, DBL_MAX]) in one pass without NumPy's ufunc
 * machinery, whose reductions in a training step slow the autograd pass that follows
 * them (instruction-cache footprint) by far more than their own cost.
 * Blocks of WB elements, a branch-free test inside each (it vectorizes), the first
 * block out of range ends the scan. */
#define WB 1024
#define DEFINE_WITHIN(T, SFX)                                                             \
WCE_CLONES static int within_##SFX(const T *a, Py_ssize_t n, double lo, double hi)        \
{                                                                                         \
    for (Py_ssize_t i = 0; i < n; i += WB) {                                              \
        Py_ssize_t m = n - i < WB ? n - i : WB;                                           \
        int bad = 0;                                                                      \
        for (Py_ssize_t k = 0; k < m; k++) {                                              \
            double v = (double)a[i + k];                                                  \
            bad |= !(v >= lo) | !(v <= hi);                                               \
        }                                                                                 \
        if (bad) return 0;                                                                \
    }                                                                                     \
    return 1;                                                                             \
}
DEFINE_WITHIN(float, f)
DEFINE_WITHIN(double, d)

static PyObject *py_within(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    Py_buffer a;
    double lo, hi;
    int ok = 1;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "within(a, lo, hi)");
        return NULL;
    }
    lo = PyFloat_AsDouble(args[1]);
    if (lo == -1.0 && PyErr_Occurred()) return NULL;
    hi = PyFloat_AsDouble(args[2]);
    if (hi == -1.0 && PyErr_Occurred()) return NULL;
    if (get_input(args[0], &a) < 0) return NULL;
    if (fmt_is(a.format, 'f') && a.itemsize == 4) {
        Py_BEGIN_ALLOW_THREADS
        ok = within_f((const float *)a.buf, a.len / 4, lo, hi);
        Py_END_ALLOW_THREADS
    } else if (fmt_is(a.format, 'd') && a.itemsize == 8) {
        Py_BEGIN_ALLOW_THREADS
        ok = within_d((const double *)a.buf, a.len / 8, lo, hi);
        Py_END_ALLOW_THREADS
    } else if (fmt_is(a.format, '?') && a.itemsize == 1) {
        const unsigned char *b = (const unsigned char *)a.buf;
        int ok0 = lo <= 0.0 && 0.0 <= hi, ok1 = lo <= 1.0 && 1.0 <= hi;
        for (Py_ssize_t k = 0; k < a.len && !(ok0 && ok1); k++)
            if (!(b[k] ? ok1 : ok0)) {
                ok = 0;
                break;
            }
    } else {
        if (a.obj) PyBuffer_Release(&a);
        PyErr_SetString(PyExc_TypeError, "a: expected float32, float64 or bool");
        return NULL;
    }
    if (a.obj) PyBuffer_Release(&a);
    return PyBool_FromLong(ok);
}

/* use_openmp(address) -> int: the address of an OpenMP runtime's GOMP_parallel to run
 * the threads of later calls on (0: this module's own threads); the previous one */
static PyObject *py_use_openmp(PyObject *self, PyObject *arg)
{
    (void)self;
    uintptr_t addr = (uintptr_t)PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred()) return NULL;
#if WCE_POOL
    gomp_parallel_t old = atomic_exchange(&omp_parallel, (gomp_parallel_t)addr);
    return PyLong_FromUnsignedLongLong((unsigned long long)(uintptr_t)old);
#else
    (void)addr;
    return PyLong_FromLong(0);
#endif
}

#define DOC_ARGS                                                                         \
    " x: float32 or float64; z: the same dtype, or bool; q: a number, or one per "      \
    "element or per class (the last axis) in x's dtype; threads: at most this many "    \
    "(default 1). C-contiguous buffers; x, z and q may be (address, n, code) tuples "   \
    "instead, code 'f', 'd' or '?'."

static PyMethodDef methods[] = {
    {"loss", (PyCFunction)(void (*)(void))py_loss, METH_FASTCALL,
     "loss(x, z, q, out[, threads]): the elementwise loss into out." DOC_ARGS},
    {"loss_sum", (PyCFunction)(void (*)(void))py_loss_sum, METH_FASTCALL,
     "loss_sum(x, z, q[, threads]) -> float: the float64 sum of the losses." DOC_ARGS},
    {"grad", (PyCFunction)(void (*)(void))py_grad, METH_FASTCALL,
     "grad(x, z, q, scale, out[, threads]): the gradient in x, times scale, into out."
     DOC_ARGS},
    {"loss_grad", (PyCFunction)(void (*)(void))py_loss_grad, METH_FASTCALL,
     "loss_grad(x, z, q, scale, out, gout[, threads]): loss and grad in one pass."
     DOC_ARGS},
    {"loss_sum_grad", (PyCFunction)(void (*)(void))py_loss_sum_grad, METH_FASTCALL,
     "loss_sum_grad(x, z, q, scale, gout[, threads]) -> float: loss_sum, and grad into "
     "gout, in one pass." DOC_ARGS},
    {"within", (PyCFunction)(void (*)(void))py_within, METH_FASTCALL,
     "within(a, lo, hi) -> bool: whether every element of a (C-contiguous float32, "
     "float64 or bool) is in [lo, hi] (NaN is not)."},
    {"use_openmp", py_use_openmp, METH_O,
     "use_openmp(address) -> int: run the threads of later calls on the OpenMP runtime "
     "whose GOMP_parallel is at this address (0: this module's own threads); returns "
     "the previous address. Elsewhere than POSIX: ignored, returns 0."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fused",
    "One-pass kernels of the weighted sigmoid cross-entropy (C).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fused(void)
{
#if WCE_POOL
    static int fork_handler = 0;
    if (!fork_handler) fork_handler = pthread_atfork(NULL, NULL, after_fork_child) == 0;
#endif
    PyObject *m = PyModule_Create(&module);
    if (m && (PyModule_AddIntConstant(m, "TASK", TASK) < 0 ||
              PyModule_AddIntConstant(m, "CHUNK", TASK * GROUP) < 0 ||
              PyModule_AddIntConstant(m, "POOL", WCE_POOL) < 0)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
