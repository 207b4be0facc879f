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
 * of the double-precision value, or one ulp from it (tests/test_engine.py runs both
 * these kernels and the ufunc ones against mpmath, in float32 and float64).
 *
 * The gradient: g = (1 - z)*sigma(x) - q*z*sigma(-x) = (b - a*e)/(1 + e) for x >= 0
 * and (b*e - a)/(1 + e) for x < 0 (e = exp(-|x|), a = q*z, b = 1 - z), times a scale.
 *
 * Labels have the logits' dtype (the engine casts bool labels first: a widening
 * conversion in the loop keeps it from vectorizing). NaN logits give NaN; NaN labels
 * propagate by the arithmetic. The GIL is released during the loops, so the engine's
 * threads run chunks in parallel.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
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
WCE_CLONES static void loss_##SFX(const T *x, const T *z, double q, const T *qa, T *out,  \
                                  Py_ssize_t n)                                           \
{                                                                                         \
    run_##SFX(x, z, q, qa, 1.0, out, NULL, n);                                            \
}                                                                                         \
                                                                                          \
WCE_CLONES static void grad_##SFX(const T *x, const T *z, double q, const T *qa,          \
                                  double scale, T *out, Py_ssize_t n)                     \
{                                                                                         \
    run_##SFX(x, z, q, qa, scale, NULL, out, n);                                          \
}                                                                                         \
                                                                                          \
/* The float64 sum of the losses as the elementwise call returns them (float32 ones      \
 * rounded first), without writing them out: blocks on the stack, added into eight       \
 * float64 lanes (independent lanes vectorize without reassociating a sum). With gout,   \
 * the gradient times scale too (the forward pass of a small reduction under autograd,   \
 * whose backward pass is known to follow). */                                            \
WCE_CLONES static double sum_##SFX(const T *x, const T *z, double q, const T *qa,         \
                                   double scale, T *gout, Py_ssize_t n)                   \
{                                                                                         \
    T v[BLOCK];                                                                           \
    double acc[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0}, tail = 0.0;                 \
    for (Py_ssize_t i = 0; i < n; i += BLOCK) {                                           \
        Py_ssize_t m = n - i < BLOCK ? n - i : BLOCK, j = 0;                              \
        run_##SFX(x + i, z + i, q, qa ? qa + i : NULL, scale, v, gout ? gout + i : NULL,  \
                  m);                                                                     \
        for (; j + 8 <= m; j += 8)                                                        \
            for (int k = 0; k < 8; k++)                                                   \
                acc[k] += (double)v[j + k];                                               \
        for (; j < m; j++)                                                                \
            tail += (double)v[j];                                                         \
    }                                                                                     \
    return (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))) \
           + tail;                                                                        \
}

DEFINE_KERNELS(float, f, loss_one, grad_one)
DEFINE_KERNELS(double, d, loss_one_d, grad_one_d)

/* --- Python glue ------------------------------------------------------------------ */

/* C-contiguous buffers of logits (float32 or float64), and labels, pos_weight (unless a
 * number) and an optional output of the logits' dtype, all of one length; anything
 * else raises (the caller checks first, and these messages name what it missed). */
typedef struct {
    Py_buffer x, z, q, out;
    int has_q, has_out, dbl;
    double qs;
    Py_ssize_t n;
} Bufs;

static void release(Bufs *b)
{
    if (b->x.obj) PyBuffer_Release(&b->x);
    if (b->z.obj) PyBuffer_Release(&b->z);
    if (b->has_q && b->q.obj) PyBuffer_Release(&b->q);
    if (b->has_out && b->out.obj) PyBuffer_Release(&b->out);
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

static int like_x(Bufs *b, Py_buffer *v, const char *name)
{
    if (!fmt_is(v->format, b->dbl ? 'd' : 'f') || v->itemsize != b->x.itemsize) {
        PyErr_Format(PyExc_TypeError, "%s: expected %s, as x", name,
                     b->dbl ? "float64" : "float32");
        return -1;
    }
    if (v->len != b->x.len) {
        PyErr_Format(PyExc_ValueError, "%s: expected as many elements as x", name);
        return -1;
    }
    return 0;
}

static int get_bufs(Bufs *b, PyObject *x, PyObject *z, PyObject *q, PyObject *out)
{
    const int ro = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT;
    memset(b, 0, sizeof(*b));
    b->has_out = out != NULL;
    b->has_q = !(PyFloat_Check(q) || PyLong_Check(q));
    if (!b->has_q) {
        b->qs = PyFloat_AsDouble(q);
        if (b->qs == -1.0 && PyErr_Occurred()) return -1;
    }
    if (PyObject_GetBuffer(x, &b->x, ro) < 0) return -1;
    if (PyObject_GetBuffer(z, &b->z, ro) < 0) goto fail;
    if (b->has_q && PyObject_GetBuffer(q, &b->q, ro) < 0) goto fail;
    if (out && PyObject_GetBuffer(out, &b->out, ro | PyBUF_WRITABLE) < 0) goto fail;
    if (fmt_is(b->x.format, 'd') && b->x.itemsize == 8) {
        b->dbl = 1;
    } else if (!fmt_is(b->x.format, 'f') || b->x.itemsize != 4) {
        PyErr_SetString(PyExc_TypeError, "x: expected float32 or float64");
        goto fail;
    }
    b->n = b->x.len / b->x.itemsize;
    if (like_x(b, &b->z, "z") < 0) goto fail;
    if (b->has_q && like_x(b, &b->q, "q") < 0) goto fail;
    if (out && like_x(b, &b->out, "out") < 0) goto fail;
    return 0;
fail:
    release(b);
    return -1;
}

#define F(v) ((const float *)(v).buf)
#define D(v) ((const double *)(v).buf)
#define QF(b) ((b).has_q ? F((b).q) : NULL)
#define QD(b) ((b).has_q ? D((b).q) : NULL)

static int get_scale(PyObject *o, double *scale)
{
    *scale = PyFloat_AsDouble(o);
    return (*scale == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

/* loss(x, z, q, out): the elementwise loss into out */
static PyObject *py_loss(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Bufs b;
    (void)self;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "loss(x, z, q, out)");
        return NULL;
    }
    if (get_bufs(&b, args[0], args[1], args[2], args[3]) < 0) return NULL;
    Py_BEGIN_ALLOW_THREADS
    if (b.dbl)
        loss_d(D(b.x), D(b.z), b.qs, QD(b), (double *)b.out.buf, b.n);
    else
        loss_f(F(b.x), F(b.z), b.qs, QF(b), (float *)b.out.buf, b.n);
    Py_END_ALLOW_THREADS
    release(&b);
    Py_RETURN_NONE;
}

/* loss_sum(x, z, q) -> float: the float64 sum of the elementwise losses */
static PyObject *py_loss_sum(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Bufs b;
    double s;
    (void)self;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "loss_sum(x, z, q)");
        return NULL;
    }
    if (get_bufs(&b, args[0], args[1], args[2], NULL) < 0) return NULL;
    Py_BEGIN_ALLOW_THREADS
    if (b.dbl)
        s = sum_d(D(b.x), D(b.z), b.qs, QD(b), 1.0, NULL, b.n);
    else
        s = sum_f(F(b.x), F(b.z), b.qs, QF(b), 1.0, NULL, b.n);
    Py_END_ALLOW_THREADS
    release(&b);
    return PyFloat_FromDouble(s);
}

/* grad(x, z, q, scale, out): the gradient in x times scale, into out */
static PyObject *py_grad(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Bufs b;
    double scale;
    (void)self;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "grad(x, z, q, scale, out)");
        return NULL;
    }
    if (get_scale(args[3], &scale) < 0) return NULL;
    if (get_bufs(&b, args[0], args[1], args[2], args[4]) < 0) return NULL;
    Py_BEGIN_ALLOW_THREADS
    if (b.dbl)
        grad_d(D(b.x), D(b.z), b.qs, QD(b), scale, (double *)b.out.buf, b.n);
    else
        grad_f(F(b.x), F(b.z), b.qs, QF(b), scale, (float *)b.out.buf, b.n);
    Py_END_ALLOW_THREADS
    release(&b);
    Py_RETURN_NONE;
}

/* loss_sum_grad(x, z, q, scale, gout) -> float: loss_sum, and grad into gout */
static PyObject *py_loss_sum_grad(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Bufs b;
    double scale, s;
    (void)self;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "loss_sum_grad(x, z, q, scale, gout)");
        return NULL;
    }
    if (get_scale(args[3], &scale) < 0) return NULL;
    if (get_bufs(&b, args[0], args[1], args[2], args[4]) < 0) return NULL;
    Py_BEGIN_ALLOW_THREADS
    if (b.dbl)
        s = sum_d(D(b.x), D(b.z), b.qs, QD(b), scale, (double *)b.out.buf, b.n);
    else
        s = sum_f(F(b.x), F(b.z), b.qs, QF(b), scale, (float *)b.out.buf, b.n);
    Py_END_ALLOW_THREADS
    release(&b);
    return PyFloat_FromDouble(s);
}

static PyMethodDef methods[] = {
    {"loss", (PyCFunction)(void (*)(void))py_loss, METH_FASTCALL,
     "loss(x, z, q, out): the elementwise loss of float32 or float64 x, z (q: a number "
     "or one per element) into out"},
    {"loss_sum", (PyCFunction)(void (*)(void))py_loss_sum, METH_FASTCALL,
     "loss_sum(x, z, q) -> float: the float64 sum of the float32 losses"},
    {"grad", (PyCFunction)(void (*)(void))py_grad, METH_FASTCALL,
     "grad(x, z, q, scale, out): the gradient in x, times scale, into out"},
    {"loss_sum_grad", (PyCFunction)(void (*)(void))py_loss_sum_grad, METH_FASTCALL,
     "loss_sum_grad(x, z, q, scale, gout) -> float: loss_sum, and grad into gout"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fused",
    "One-pass kernels of the weighted sigmoid cross-entropy (C).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fused(void) { return PyModule_Create(&module); }
