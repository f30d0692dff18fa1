/* flowviz._untrack: take finished records out of the cyclic garbage collector's lists, and make
 * records (record(), below) without the interpreter's call protocol.
 *
 * A packet's hops are NamedTuples (tuple subclasses): immutable, made of strings, numbers and other
 * such records, so they can never be part of a reference cycle. CPython stops tracking a plain
 * tuple of untracked items when a collection finds it, but never a tuple subclass, so every hop,
 * event, frame and change stays in the collector's lists, and each young-generation collection
 * walks all of them (scripts/bench-tui: 20-120 ms pauses holding the GIL at 100k sightings/s).
 *
 * untrack(obj) stops tracking obj and, recursively, every tuple (subclasses included) it holds,
 * and returns obj. Only tuples are untracked: a list, dict or other object inside stays tracked.
 * Untracking never frees or keeps anything: reference counts are untouched, and a tracked object
 * referred to from an untracked tuple counts as referred to from outside, so it stays alive. The
 * only cost of untracking a tuple wrongly would be a cycle through it never being collected; a
 * tuple cannot refer to itself except through a mutable object, which is why those stay tracked.
 * flowviz/gcuntrack.py falls back to returning obj unchanged when this module is not built.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define MAX_DEPTH 64   /* frames nest a few levels (tunnels); deeper input is left tracked */

static void untrack_tuples(PyObject *obj, int depth)
{
    if (depth > MAX_DEPTH || !PyTuple_Check(obj) || !PyObject_GC_IsTracked(obj))
        return;   /* an untracked tuple's items were seen when it was untracked */
    PyObject_GC_UnTrack(obj);
    for (Py_ssize_t i = 0, n = PyTuple_GET_SIZE(obj); i < n; i++)
        untrack_tuples(PyTuple_GET_ITEM(obj, i), depth + 1);
}

static PyObject *untrack(PyObject *self, PyObject *obj)
{
    (void)self;
    untrack_tuples(obj, 0);
    Py_INCREF(obj);
    return obj;
}

/* record(cls, *fields): an instance of the tuple subclass cls (a NamedTuple) holding fields, as
 * tuple.__new__(cls, fields) makes it (the class's own __new__ is skipped there too). That call
 * goes through the interpreter's generic call protocol: an argument tuple, then a plain tuple of
 * the fields copied into the new object. Here the object is allocated and filled at once, about
 * half the time a record; flowviz builds several per sighting. */
static PyObject *record(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs < 1 || !PyType_Check(args[0]) || !PyType_IsSubtype((PyTypeObject *)args[0], &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "record(cls, *fields): cls must be a subclass of tuple");
        return NULL;
    }
    PyTypeObject *cls = (PyTypeObject *)args[0];
    Py_ssize_t n = nargs - 1;
    PyObject *obj = cls->tp_alloc(cls, n);
    if (obj == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_INCREF(args[i + 1]);
        PyTuple_SET_ITEM(obj, i, args[i + 1]);
    }
    return obj;
}

static PyMethodDef methods[] = {
    {"untrack", untrack, METH_O,
     "untrack(obj) -> obj: stop the garbage collector tracking obj and every tuple in it, when tuples."},
    {"record", (PyCFunction)(void (*)(void))record, METH_FASTCALL,
     "record(cls, *fields) -> tuple.__new__(cls, fields), made directly."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "flowviz._untrack", "Finished records out of the garbage collector's lists.", -1, methods,
};

PyMODINIT_FUNC PyInit__untrack(void)
{
    return PyModule_Create(&module);
}
