/* model_dev._aed_frontend: the device's C front end (csrc/aed/src/aed_frontend.c, unchanged) as
 * a CPython extension, built at install time (setup.py) with the generated config header and
 * tables of the default FrontendConfig (pyext/default/). Not firmware: it lives outside csrc/. model_dev.frontend runs clips of that config
 * through it; the numpy code stays the specification and the tests compare all three byte for
 * byte. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "aed_frontend.h"

#ifndef AED_PYEXT_SOURCES_SHA256
#error "setup.py defines AED_PYEXT_SOURCES_SHA256 (the hash of the sources this was built from)"
#endif

/* clip(audio, out): int16 samples (any C-contiguous buffer of format 'h') -> the features of
 * aed_frontend_clip, written to out (a writable int8 buffer of n_frames * n_mels bytes). */
static PyObject *aed_py_clip(PyObject *self, PyObject *args)
{
    Py_buffer audio, out;
    size_t n, frames;
    aed_frontend_t fe;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*w*", &audio, &out)) {
        return NULL;
    }
    n = (size_t)audio.len / sizeof(int16_t);
    frames = aed_frontend_n_frames(n);
    if ((size_t)audio.len % sizeof(int16_t) != 0 || (size_t)out.len != frames * AED_FE_N_MELS) {
        PyErr_Format(PyExc_ValueError,
                     "clip: %zd bytes of audio give %zu frames of %d bands, out has %zd bytes",
                     audio.len, frames, AED_FE_N_MELS, out.len);
        PyBuffer_Release(&audio);
        PyBuffer_Release(&out);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    aed_frontend_clip(&fe, (const int16_t *)audio.buf, n, (int8_t *)out.buf);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&audio);
    PyBuffer_Release(&out);
    Py_RETURN_NONE;
}

static PyMethodDef aed_py_methods[] = {
    {"clip", aed_py_clip, METH_VARARGS, "clip(audio_int16, out_int8): the C front end on a clip"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef aed_py_module = {
    PyModuleDef_HEAD_INIT, "_aed_frontend", "The device's C front end (default config).", -1,
    aed_py_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__aed_frontend(void)
{
    PyObject *m = PyModule_Create(&aed_py_module);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddStringConstant(m, "CONFIG_HASH", AED_FE_CONFIG_HASH) < 0 ||
        PyModule_AddStringConstant(m, "SOURCES_SHA256", AED_PYEXT_SOURCES_SHA256) < 0 ||
        PyModule_AddIntConstant(m, "N_MELS", AED_FE_N_MELS) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
