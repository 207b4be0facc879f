/* One-pass float32 kernels of the weighted sigmoid cross-entropy (the NumPy engine's
 * fast path for float32 chunks; see wce_xp/_native/_numpy.py).
 *
 * The NumPy engine evaluates the loss as about twelve ufunc passes per chunk; this
 * file makes one pass per chunk, computing each element in double precision and
 * rounding once to float32:
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
 * of the double-precision value, or one ulp from it (tests/test_engine.py compares
 * them with the generic path and tests/test_accuracy.py with mpmath).
 *
 * The gradient: g = (1 - z)*sigma(x) - q*z*sigma(-x) = (b - a*e)/(1 + e) for x >= 0
 * and (b*e - a)/(1 + e) for x < 0 (e = exp(-|x|), a = q*z, b = 1 - z), times a scale.
 *
 * Labels are float32 (the engine casts bool labels first: a widening conversion in the
 * loop keeps it from vectorizing). NaN logits give NaN; NaN labels propagate by the
 * arithmetic. The GIL is
 * released during the loops, so the engine's threads run chunks in parallel.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define WCE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define WCE_CLONES
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
static inline double exp_neg(double t)
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
static inline double log1p_unit(double e)
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

static inline double loss_one(double x, double z, double q)
{
    double ax = x < 0.0 ? -x : x;
    double e = exp_neg(-ax);
    double lg = log1p_unit(e);
    double a = q * z, b = 1.0 - z;
    double c = x < 0.0 ? a : b;
    double lin = c == 0.0 ? 0.0 : c * ax;
    double v = lin + (a + b) * lg;
    return x != x ? x : v;
}

static inline double grad_one(double x, double z, double q)
{
    double ax = x < 0.0 ? -x : x;
    double e = exp_neg(-ax);
    double a = q * z, b = 1.0 - z;
    double num = x < 0.0 ? b * e - a : b - a * e;
    double g = num / (1.0 + e);
    return x != x ? x : g;
}

/* The loops: q is the number q, or qa[i] where qa (float32, one per element) is given.
 * Each branch is its own loop, so each vectorizes. */
static inline void loss_block(const float *x, const float *z, double q, const float *qa,
                              float *out, Py_ssize_t n)
{
    if (qa)
        for (Py_ssize_t i = 0; i < n; i++)
            out[i] = (float)loss_one((double)x[i], (double)z[i], (double)qa[i]);
    else
        for (Py_ssize_t i = 0; i < n; i++)
            out[i] = (float)loss_one((double)x[i], (double)z[i], q);
}

WCE_CLONES static void loss_f(const float *x, const float *z, double q, const float *qa,
                              float *out, Py_ssize_t n)
{
    loss_block(x, z, q, qa, out, n);
}

/* The float64 sum of the float32-rounded losses (what the NumPy path sums), without
 * writing them out: blocks of losses on the stack, added into eight float64 lanes
 * (independent lanes vectorize without reassociating a sum). */
#define BLOCK 512

static inline double add_lanes(const float *v, Py_ssize_t m, double *acc)
{
    Py_ssize_t j = 0;
    for (; j + 8 <= m; j += 8)
        for (int k = 0; k < 8; k++)
            acc[k] += (double)v[j + k];
    double tail = 0.0;
    for (; j < m; j++)
        tail += (double)v[j];
    return tail;
}

WCE_CLONES static double sum_f(const float *x, const float *z, double q, const float *qa,
                               Py_ssize_t n)
{
    float v[BLOCK];
    double acc[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0}, tail = 0.0;
    for (Py_ssize_t i = 0; i < n; i += BLOCK) {
        Py_ssize_t m = n - i < BLOCK ? n - i : BLOCK;
        loss_block(x + i, z + i, q, qa ? qa + i : NULL, v, m);
        tail += add_lanes(v, m, acc);
    }
    return (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])))
           + tail;
}

WCE_CLONES static void grad_f(const float *x, const float *z, double q, const float *qa,
                              double scale, float *out, Py_ssize_t n)
{
    if (qa)
        for (Py_ssize_t i = 0; i < n; i++)
            out[i] = (float)(grad_one((double)x[i], (double)z[i], (double)qa[i]) * scale);
    else
        for (Py_ssize_t i = 0; i < n; i++)
            out[i] = (float)(grad_one((double)x[i], (double)z[i], q) * scale);
}

/* The sum of the losses and the gradient (times scale) in one pass: for the
 * forward pass of a reduction whose backward pass is known to follow (small tensors
 * under autograd), exp(-|x|) computed once for both. */
WCE_CLONES static double sum_grad_f(const float *x, const float *z, double q,
                                    const float *qa, double scale, float *gout,
                                    Py_ssize_t n)
{
    float v[BLOCK];
    double acc[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0}, tail = 0.0;
    for (Py_ssize_t i = 0; i < n; i += BLOCK) {
        Py_ssize_t m = n - i < BLOCK ? n - i : BLOCK;
        for (Py_ssize_t k = 0; k < m; k++) {
            double xi = (double)x[i + k], zi = (double)z[i + k];
            double qi = qa ? (double)qa[i + k] : q;
            v[k] = (float)loss_one(xi, zi, qi);
            gout[i + k] = (float)(grad_one(xi, zi, qi) * scale);
        }
        tail += add_lanes(v, m, acc);
    }
    return (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])))
           + tail;
}

/* --- Python glue ------------------------------------------------------------------ */

/* C-contiguous buffers of float32 logits, labels, pos_weight (unless a number) and an
 * optional float32 output, all of one length; anything else raises (the caller checks
 * first, and these messages name what it missed). */
typedef struct {
    Py_buffer x, z, q, out;
    int has_q, has_out;
    double qs;
} Bufs;

static void release(Bufs *b)
{
    if (b->x.obj) PyBuffer_Release(&b->x);
    if (b->z.obj) PyBuffer_Release(&b->z);
    if (b->has_q && b->q.obj) PyBuffer_Release(&b->q);
    if (b->has_out && b->out.obj) PyBuffer_Release(&b->out);
}

static int float32_of_len(Py_buffer *v, Py_ssize_t len, const char *name)
{
    if (strcmp(v->format, "f") != 0 || v->itemsize != 4) {
        PyErr_Format(PyExc_TypeError, "%s: expected float32", name);
        return -1;
    }
    if (v->len != len) {
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
    if (strcmp(b->x.format, "f") != 0 || b->x.itemsize != 4) {
        PyErr_SetString(PyExc_TypeError, "x: expected float32");
        goto fail;
    }
    if (float32_of_len(&b->z, b->x.len, "z") < 0) goto fail;
    if (b->has_q && float32_of_len(&b->q, b->x.len, "q") < 0) goto fail;
    if (out && float32_of_len(&b->out, b->x.len, "out") < 0) goto fail;
    return 0;
fail:
    release(b);
    return -1;
}

#define QA(b) ((b).has_q ? (const float *)(b).q.buf : NULL)

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
    Py_ssize_t n = b.x.len / 4;
    Py_BEGIN_ALLOW_THREADS
    loss_f((const float *)b.x.buf, (const float *)b.z.buf, b.qs, QA(b), (float *)b.out.buf, n);
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
    Py_ssize_t n = b.x.len / 4;
    Py_BEGIN_ALLOW_THREADS
    s = sum_f((const float *)b.x.buf, (const float *)b.z.buf, b.qs, QA(b), n);
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
    scale = PyFloat_AsDouble(args[3]);
    if (scale == -1.0 && PyErr_Occurred()) return NULL;
    if (get_bufs(&b, args[0], args[1], args[2], args[4]) < 0) return NULL;
    Py_ssize_t n = b.x.len / 4;
    Py_BEGIN_ALLOW_THREADS
    grad_f((const float *)b.x.buf, (const float *)b.z.buf, b.qs, QA(b), scale,
           (float *)b.out.buf, n);
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
    scale = PyFloat_AsDouble(args[3]);
    if (scale == -1.0 && PyErr_Occurred()) return NULL;
    if (get_bufs(&b, args[0], args[1], args[2], args[4]) < 0) return NULL;
    Py_ssize_t n = b.x.len / 4;
    Py_BEGIN_ALLOW_THREADS
    s = sum_grad_f((const float *)b.x.buf, (const float *)b.z.buf, b.qs, QA(b), scale,
                   (float *)b.out.buf, n);
    Py_END_ALLOW_THREADS
    release(&b);
    return PyFloat_FromDouble(s);
}

static PyMethodDef methods[] = {
    {"loss", (PyCFunction)(void (*)(void))py_loss, METH_FASTCALL,
     "loss(x, z, q, out): the elementwise loss of float32 x, z (q: a number or float32 "
     "per element) into out"},
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
    "One-pass float32 kernels of the weighted sigmoid cross-entropy (C).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fused(void) { return PyModule_Create(&module); }
