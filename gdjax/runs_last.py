"""runs_last(): vmap with the runs axis last, and contractions as fused multiply-adds.

``jax.vmap`` puts the runs axis first and leaves a contraction between two
per-run values (the XOR network's ``hidden @ W1`` and its gradients) as a
batched dot of tiny matrices, which XLA's CPU backend runs as thousands of
separate small products with transposes around them. ``runs_last`` traces
the per-run function to a jaxpr and evaluates it on arrays whose *last* axis
is the runs axis: elementwise work is then contiguous over runs, and every
contraction or sum over a run's values (a product of the data with per-run
values, XOR's ``hidden @ W1``, a loss's sum over the examples) is written out
as multiply-adds of slices along the runs axis (:func:`_sum`), which XLA
fuses with the elementwise work around them. With the engine's tiles (see
``gdjax.engine``) the XOR sweep of 4,096 rates went from 29.8 to 14.1 ns per
learning-rate step on two CPU cores.

Elementwise along the runs, each run's result is the same whatever the other
runs: an XLA dot or reduction is blocked by the number of runs, so a run's
rounding would depend on its grid (the regression's ``X.T @ r`` as one
matrix product gave other last bits for 2, 3, 6 or 8 runs than for 1). Each
run computes the same terms as under ``jax.vmap``; only the order of some
sums differs. A primitive without a rule here is evaluated by ``jax.vmap``
itself (the runs axis moved first and back), so any function JAX can batch
is accepted; such a primitive may round a run differently in another grid.

The rules read primitives' parameters, which JAX may change in any release
(``scan`` did in 0.11). Three guards keep a new JAX from giving wrong
numbers or an error: a parameter layout not known here sends that
equation to ``jax.vmap``; so does a rule that fails (with a one-time
warning naming the primitive and the JAX version); and once per process a
numeric self-test (:func:`fast_path_agrees`) compares the rules with
``jax.vmap`` on a small corpus of training steps and, if they disagree,
turns the fast path off for the process (``jax.vmap`` throughout, slower)
with a warning.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np
from jax import lax
from jax.extend import core

# Sums of at most this many terms are added in order; longer ones as a grid of about sqrt(terms)
# rows added in order, then the row's sums in order: a program of about 2 sqrt(terms) adds.
UNROLL_LIMIT = 16
# A contraction with per-run values is written out elementwise up to this many products a run
# (terms x free values: 200 for the textbook regression's X.T @ r, 600 for logistic regression's);
# past it, it is an XLA dot: the products would take that many values a run of memory.
ELEMENTWISE_DOT_LIMIT = 4096

ELEMENTWISE_NAMES = """
    abs acos acosh add and asin asinh atan atan2 atanh cbrt ceil clamp convert_element_type copy
    copy_p cos cosh digamma div eq erf erf_inv erfc exp exp2 expm1 floor ge gt integer_pow is_finite
    le lgamma log log1p logistic lt max min mul ne neg nextafter not or pow reduce_precision rem
    round rsqrt select_n sign sin sinh sqrt square stop_gradient sub tan tanh xor"""
ELEMENTWISE = frozenset(ELEMENTWISE_NAMES.split())
CALLS = frozenset({"jit", "pjit", "closed_call", "core_call", "custom_jvp_call", "custom_vjp_call"})
REDUCTIONS = frozenset({"reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "reduce_and", "reduce_or"})


def runs_last(fn, batched):
    """``fn`` over many runs at once: ``jax.vmap(fn, in_axes, out_axes=-1)`` with every batched axis last.

    Args:
        fn: a function of one run, positional arguments, returning a pytree.
        batched: one bool per positional argument (or a pytree prefix of it):
            True where the argument's leaves carry the runs as their last
            axis, False where the argument is shared by every run.

    Returns:
        A function of the same arguments whose outputs all carry the runs as
        their last axis.
    """

    def batched_fn(*args):
        if not fast_path_agrees():
            in_axes = jax.tree.map(lambda flag: -1 if flag else None, tuple(batched))
            return jax.vmap(fn, in_axes=in_axes, out_axes=-1)(*args)
        return _runs_last(fn, batched)(*args)

    return batched_fn


def _runs_last(fn, batched):
    """``runs_last`` without the self-test: the rules of this module, whatever they give."""

    def batched_fn(*args):
        leaves, tree = jax.tree.flatten(args)
        flags = jax.tree.leaves(
            jax.tree.map(lambda flag, arg: jax.tree.map(lambda _: flag, arg), batched, args)
        )
        n_runs = {leaf.shape[-1] for leaf, flag in zip(leaves, flags, strict=True) if flag}
        if len(n_runs) != 1:
            raise ValueError(f"the batched arguments must share one last (runs) axis; got lengths {n_runs}")
        (n_runs,) = n_runs
        per_run = [
            jax.ShapeDtypeStruct(leaf.shape[:-1] if flag else np.shape(leaf), leaf.dtype)
            for leaf, flag in zip(leaves, flags, strict=True)
        ]
        closed, out_shape = jax.make_jaxpr(
            lambda *flat: fn(*jax.tree.unflatten(tree, flat)), return_shape=True
        )(*per_run)
        outs, out_flags = _evaluate(closed.jaxpr, closed.consts, leaves, flags, n_runs)
        outs = [out if flag else _spread(out, n_runs) for out, flag in zip(outs, out_flags, strict=True)]
        return jax.tree.unflatten(jax.tree.structure(out_shape), outs)

    return batched_fn


def _spread(value, n_runs):
    """A shared value given to every run: a copy along a new last axis."""
    value = jnp.asarray(value)
    return lax.broadcast_in_dim(value, (*value.shape, n_runs), tuple(range(value.ndim)))


def _evaluate(jaxpr, consts, args, flags, n_runs):
    """Evaluate ``jaxpr``; ``flags`` say which arguments carry runs last. Returns outputs and their flags."""
    env = {}

    def read(var):
        return (var.val, False) if isinstance(var, core.Literal) else env[var]

    env.update({var: (const, False) for var, const in zip(jaxpr.constvars, consts, strict=True)})
    env.update({var: (arg, flag) for var, arg, flag in zip(jaxpr.invars, args, flags, strict=True)})
    for eqn in jaxpr.eqns:
        values, value_flags = zip(*map(read, eqn.invars), strict=True) if eqn.invars else ((), ())
        if any(value_flags):
            outs, out_flags = _apply(eqn, list(values), list(value_flags), n_runs)
        else:
            out = _bind(eqn, values)
            outs = out if eqn.primitive.multiple_results else [out]
            out_flags = [False] * len(outs)
        env.update({var: (out, flag) for var, out, flag in zip(eqn.outvars, outs, out_flags, strict=True)})
    outs = [read(var) for var in jaxpr.outvars]
    return [out for out, _ in outs], [flag for _, flag in outs]


def _bind(eqn, operands):
    """``eqn``'s primitive applied to ``operands``, as ``jax.core.eval_jaxpr`` does it."""
    bind_params = eqn.primitive.get_bind_params(eqn.params)
    if isinstance(bind_params, tuple):  # jax 0.8: (sub-functions, parameters)
        subfuns, bind_params = bind_params
        return eqn.primitive.bind(*subfuns, *operands, **bind_params)
    return eqn.primitive.bind(*operands, **bind_params)


def _apply(eqn, values, flags, n_runs):
    """One equation with at least one batched operand: (outputs, their flags)."""
    name, params = eqn.primitive.name, dict(eqn.params)
    try:
        done = _apply_rule(eqn, name, params, values, flags, n_runs)
    except Exception as error:  # whatever a rule raises, jax.vmap batches the equation correctly
        _warn_once(
            f"{name}: {type(error).__name__}: {error}"
        )  # a rule that does not fit this JAX's primitive
        done = None
    if done is not None:
        return done
    # no rule: let vmap batch it, runs moved first and back
    moved = [jnp.moveaxis(v, -1, 0) if flag else v for v, flag in zip(values, flags, strict=True)]
    out = jax.vmap(lambda *operands: _bind(eqn, operands), in_axes=[0 if flag else None for flag in flags])(
        *moved
    )
    outs = jax.tree.map(
        lambda leaf: jnp.moveaxis(leaf, 0, -1), out if eqn.primitive.multiple_results else [out]
    )
    return outs, [True] * len(outs)


def _apply_rule(eqn, name, params, values, flags, n_runs):
    """(outputs, their flags) by this module's rules, or None where there is none for this equation."""
    if name in CALLS:
        inner = params.get("jaxpr", params.get("call_jaxpr"))
        if isinstance(inner, core.ClosedJaxpr):
            return _evaluate(inner.jaxpr, inner.consts, values, flags, n_runs)
        if isinstance(inner, core.Jaxpr):
            return _evaluate(inner, (), values, flags, n_runs)
        return None
    if name == "scan":
        return _scan(values, flags, n_runs, params)
    if name == "cond" and not flags[0]:
        return _cond(values, flags, n_runs, params["branches"])
    out = _rule(eqn.primitive, name, params, values, flags, n_runs)
    if out is None:
        return None
    outs = out if eqn.primitive.multiple_results else [out]
    return outs, [True] * len(outs)


_WARNED = set()


def _warn_once(what: str) -> None:
    if what not in _WARNED:
        _WARNED.add(what)
        warnings.warn(
            f"gdjax.runs_last: jax {jax.__version__}: {what}; that equation is batched by jax.vmap "
            "(correct, slower)",
            RuntimeWarning,
            stacklevel=3,
        )


def _rule(primitive, name, params, values, flags, n_runs):
    """The runs-last form of one primitive, or None where there is no rule."""
    shapes = [v.shape[:-1] if flag else np.shape(v) for v, flag in zip(values, flags, strict=True)]
    if name in ELEMENTWISE:
        # operands may differ by rank 0 or by size-1 axes (numpy's rule, which JAX's jaxprs use since 0.4.36)
        shape = np.broadcast_shapes(*shapes)
        values = [
            v if flag and s == shape else _broadcast(v, flag, s, shape, n_runs)
            for v, flag, s in zip(values, flags, shapes, strict=True)
        ]
        return primitive.bind(*values, **params)
    if name == "broadcast_in_dim" and params.get("sharding") is None:
        rank = len(params["shape"])
        params["shape"] = (*params["shape"], n_runs)
        params["broadcast_dimensions"] = (*params["broadcast_dimensions"], rank)
        return primitive.bind(*values, **params)
    if name == "reshape" and params.get("dimensions") is None and params.get("sharding") is None:
        params["new_sizes"] = (*params["new_sizes"], n_runs)
        return primitive.bind(*values, **params)
    if name == "pad" and not flags[1]:
        params["padding_config"] = (*params["padding_config"], (0, 0, 0))
        return primitive.bind(*values, **params)
    if name == "concatenate":
        values = [v if flag else _spread(v, n_runs) for v, flag in zip(values, flags, strict=True)]
        return primitive.bind(*values, **params)
    if name == "transpose":
        params["permutation"] = (*params["permutation"], len(params["permutation"]))
        return primitive.bind(*values, **params)
    if name == "squeeze":
        return primitive.bind(*values, **params)
    if name == "slice":
        params["start_indices"] = (*params["start_indices"], 0)
        params["limit_indices"] = (*params["limit_indices"], n_runs)
        if params.get("strides") is not None:
            params["strides"] = (*params["strides"], 1)
        return primitive.bind(*values, **params)
    if name == "dynamic_slice" and len(values) > 1 and flags[0] and not any(flags[1:]):
        operand, *starts = values
        params["slice_sizes"] = (*params["slice_sizes"], n_runs)
        return primitive.bind(operand, *starts, np.zeros((), starts[0].dtype), **params)
    if name == "reduce_sum" and (
        jnp.issubdtype(values[0].dtype, jnp.inexact) or math.prod(shapes[0][a] for a in params["axes"]) == 0
    ):
        return _sum(values[0], params["axes"])
    if name in REDUCTIONS:
        return primitive.bind(*values, **params)
    if name == "dot_general":
        return _dot(values, flags, shapes, n_runs, **params)
    return None


def _broadcast(value, batched, shape, full_shape, n_runs):
    """``value`` (per-run ``shape``, its runs last where ``batched``) broadcast to ``full_shape`` + runs."""
    offset = len(full_shape) - len(shape)
    dims = tuple(range(offset, len(full_shape))) + ((len(full_shape),) if batched else ())
    return lax.broadcast_in_dim(value, (*full_shape, n_runs), dims)


def _sum(x, axes):
    """Sum over ``axes`` (not the runs axis) by elementwise adds: a run's sum does not depend on the others.

    A reduction or a dot over the runs' values is blocked by XLA according to
    the number of runs, so a run's rounding would depend on its grid. Adds
    of slices along the runs axis do not. At most ``UNROLL_LIMIT`` terms are
    added in order (XLA fuses the chain with its neighbours); more are laid
    out (zero-padded) as about sqrt(terms) rows of as many, the rows added in
    order and then the partial sums in order: about 2 sqrt(terms) adds in the
    program. The textbook regression's ``X.T @ r`` over 100 examples (2
    cores, 160 runs): 30-33 ns per learning-rate step and 1.6 s to compile so,
    against 30 ns and 2.6 s all in order and 54 ns as one XLA dot. (A pairwise
    sum of the terms themselves was not invariant on jax 0.12's CPU backend:
    which product of a first-level add became a fused multiply-add depended
    on the number of runs.)
    """
    keep = [a for a in range(x.ndim) if a not in axes]
    n_terms = math.prod(x.shape[a] for a in axes)
    terms = lax.transpose(x, (*axes, *keep)).reshape(n_terms, *(x.shape[a] for a in keep))
    if n_terms == 0:
        return jnp.zeros(terms.shape[1:], x.dtype)
    if n_terms > UNROLL_LIMIT:
        rows = math.isqrt(n_terms - 1) + 1
        columns = -(-n_terms // rows)
        terms = jnp.pad(terms, [(0, rows * columns - n_terms)] + [(0, 0)] * (terms.ndim - 1))
        terms = _sum_in_order(terms.reshape(rows, columns, *terms.shape[1:]))
    return _sum_in_order(terms)


def _sum_in_order(terms):
    """``terms[0] + terms[1] + ...``, in that order."""
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def _dot(
    values, flags, shapes, n_runs, *, dimension_numbers, precision=None, preferred_element_type=None, **_
):
    """A contraction with per-run operands: products of slices summed by :func:`_sum`, or one XLA dot.

    Elementwise along the runs, so each run's result does not depend on the
    other runs (an XLA dot's blocking does), and a few terms fuse with their
    neighbours. The products are an array of (terms x free values) a run, so
    past ``ELEMENTWISE_DOT_LIMIT`` of them a product of shared data with
    per-run values is one XLA dot instead (the runs last in its output), whose
    rounding may depend on the number of runs; a product of two per-run
    values that large goes to ``jax.vmap``.
    """
    (lhs_contract, rhs_contract), (lhs_batch, rhs_batch) = dimension_numbers
    if lhs_batch or rhs_batch:
        return None
    lhs, rhs = values
    if preferred_element_type is not None:  # accumulate in the wider type, as XLA's dot does
        lhs, rhs = lhs.astype(preferred_element_type), rhs.astype(preferred_element_type)
    lhs_free = [a for a in range(len(shapes[0])) if a not in lhs_contract]
    rhs_free = [a for a in range(len(shapes[1])) if a not in rhs_contract]
    terms = math.prod(shapes[0][a] for a in lhs_contract)
    n_lhs, n_rhs = (math.prod(shapes[0][a] for a in lhs_free), math.prod(shapes[1][a] for a in rhs_free))
    out_shape = (*(shapes[0][a] for a in lhs_free), *(shapes[1][a] for a in rhs_free), n_runs)
    if terms * n_lhs * n_rhs > ELEMENTWISE_DOT_LIMIT:
        dot = dict(precision=precision, preferred_element_type=preferred_element_type)
        if not flags[0]:  # shared @ per-run: one matrix product, the runs last in the output already
            return lax.dot_general(lhs, rhs, ((lhs_contract, rhs_contract), ((), ())), **dot)
        if not flags[1]:  # per-run @ shared: the product the other way round, then the free axes swapped back
            out = lax.dot_general(rhs, lhs, ((rhs_contract, lhs_contract), ((), ())), **dot)
            k, m = len(rhs_free), len(lhs_free)
            return lax.transpose(out, (*range(k, k + m), *range(k), k + m))
        return None  # per-run @ per-run: vmap's batched product
    lhs = lhs if flags[0] else _spread(lhs, n_runs)
    rhs = rhs if flags[1] else _spread(rhs, n_runs)
    lhs_terms = lax.transpose(lhs, (*lhs_contract, *lhs_free, len(shapes[0]))).reshape(
        terms, n_lhs, 1, n_runs
    )
    rhs_terms = lax.transpose(rhs, (*rhs_contract, *rhs_free, len(shapes[1]))).reshape(
        terms, 1, n_rhs, n_runs
    )
    return _sum(lhs_terms * rhs_terms, (0,)).reshape(out_shape)


def elementwise_products(eqn) -> int:
    """The products a run holds for ``eqn`` if it is a contraction written out elementwise (``_dot``)."""
    if eqn.primitive.name != "dot_general":
        return 0
    (_, rhs_contract), (lhs_batch, rhs_batch) = eqn.params["dimension_numbers"]
    lhs, rhs = (var.aval.shape for var in eqn.invars)
    products = math.prod(lhs) * math.prod(rhs[a] for a in range(len(rhs)) if a not in rhs_contract)
    return 0 if lhs_batch or rhs_batch or products > ELEMENTWISE_DOT_LIMIT else products


def scan_layout(params, n_operands):
    """(num_consts, num_carry) of a scan equation from the parameter layouts known here, else None.

    Checked against the body's types: carry in and out alike, and every
    operand accounted for.
    """
    if "num_consts" in params and "num_carry" in params:  # jax <= 0.10
        num_consts, num_carry = params["num_consts"], params["num_carry"]
    elif "ft_in" in params:  # jax 0.11 and later: flat trees of (consts, carry, xs)
        parts = params["ft_in"].unpack()
        if len(parts) != 3:
            return None
        num_consts, num_carry = len(parts[0]), len(parts[1])
    else:
        return None
    body = params["jaxpr"]
    carry_in = body.in_avals[num_consts : num_consts + num_carry]
    carry_out = body.out_avals[:num_carry]
    if len(body.in_avals) != n_operands or [(a.shape, a.dtype) for a in carry_in] != [
        (a.shape, a.dtype) for a in carry_out
    ]:
        return None
    return num_consts, num_carry


def _scan(values, flags, n_runs, params):
    """A scan; a carry that stays the same for every run (a step count) stays shared, the rest runs last."""
    layout = scan_layout(params, len(values))
    if layout is None:
        _warn_once(f"scan: parameters {sorted(params)} are not a layout known here")
        return None
    num_consts, num_carry = layout
    jaxpr, length, reverse, unroll = params["jaxpr"], params["length"], params["reverse"], params["unroll"]
    n_in = num_consts + num_carry
    consts, init, xs = values[:num_consts], values[num_consts:n_in], values[n_in:]
    const_flags, xs_flags = flags[:num_consts], flags[n_in:]

    def step(carry_flags):
        def body(carry, x):
            outs, out_flags = _evaluate(
                jaxpr.jaxpr,
                jaxpr.consts,
                [*consts, *carry, *x],
                [*const_flags, *carry_flags, *xs_flags],
                n_runs,
            )
            body.out_flags = out_flags
            carry_out = [
                _spread(out, n_runs) if flag and not out_flag else out
                for out, flag, out_flag in zip(outs[:num_carry], carry_flags, out_flags, strict=False)
            ]
            return carry_out, outs[num_carry:]

        return body

    carry_flags = list(flags[num_consts:n_in])
    while True:  # a carry becomes per-run once a step makes it so
        body = step(carry_flags)
        carry = [
            jax.ShapeDtypeStruct((*np.shape(v), n_runs) if flag and not given else np.shape(v), v.dtype)
            for v, flag, given in zip(init, carry_flags, flags[num_consts:n_in], strict=True)
        ]
        jax.eval_shape(body, carry, [jax.ShapeDtypeStruct(v.shape[1:], v.dtype) for v in xs])
        widened = [a or b for a, b in zip(carry_flags, body.out_flags, strict=False)]
        if widened == carry_flags:
            break
        carry_flags = widened
    init = [
        _spread(v, n_runs) if flag and not given else v
        for v, flag, given in zip(init, carry_flags, flags[num_consts:n_in], strict=True)
    ]
    body = step(carry_flags)
    carry, ys = lax.scan(body, init, xs, length=length, reverse=reverse, unroll=unroll)
    return [*carry, *ys], [*carry_flags, *body.out_flags[num_carry:]]


def _cond(values, flags, n_runs, branches):
    """A cond whose branch index is shared by every run stays a cond (vmap would run every branch)."""
    index, operands, operand_flags = values[0], values[1:], flags[1:]

    def branch_fn(branch):
        def run(*operands):
            outs, out_flags = _evaluate(branch.jaxpr, branch.consts, operands, operand_flags, n_runs)
            return [out if flag else _spread(out, n_runs) for out, flag in zip(outs, out_flags, strict=True)]

        return run

    outs = lax.switch(index, [branch_fn(branch) for branch in branches], *operands)
    return outs, [True] * len(outs)


SELF_TEST_RTOL = 1e-4  # float32; the rules only reorder a few short sums, a wrong rule is off by far more


@functools.cache
def fast_path_agrees() -> bool:
    """Whether this module's rules give ``jax.vmap``'s numbers on this JAX; checked once per process.

    The corpus (:func:`_self_test_corpus`) is a few float32 training steps
    that use the rules the engine does: a network with a bias and softmax
    cross-entropy on integer labels, its gradient, an Adam-like scaled step,
    inside a ``lax.scan`` with a step count shared by every run, a carry
    that becomes per-run, per-run scanned inputs and a ``cond`` on the step;
    then short and long contractions and sums, reshapes, slices, pads and
    concatenations. ``jax.vmap``'s products run at the highest precision
    (a GPU's default may be TF32). A disagreement beyond ``SELF_TEST_RTOL``,
    or an error, turns the fast path off for the process, with a warning;
    ``runs_last`` is then ``jax.vmap`` with the runs last.

    The test compiles two programs (seconds on a CPU). With JAX's persistent
    compilation cache on (``gdjax.use_compile_cache``), an agreement is
    remembered there, keyed by this module's source, the JAX and jaxlib
    versions and the device: a later process with the same ones skips it.
    """
    remembered = _agreement_file()
    if remembered is not None and remembered.is_file():
        return True
    try:
        with jax.ensure_compile_time_eval(), jax.numpy_rank_promotion("allow"):
            for name, fn, args, batched in _self_test_corpus():
                in_axes = [-1 if flag else None for flag in batched]
                with jax.default_matmul_precision("highest"):
                    expected = jax.jit(jax.vmap(fn, in_axes=in_axes, out_axes=-1))(*args)
                got = jax.jit(_runs_last(fn, batched))(*args)
                for want, have in zip(jax.tree.leaves(expected), jax.tree.leaves(got), strict=True):
                    if np.shape(want) != np.shape(have) or not np.allclose(
                        have, want, rtol=SELF_TEST_RTOL, atol=SELF_TEST_RTOL
                    ):
                        return _fast_path_off(f"disagrees with jax.vmap on the self-test {name!r}")
    except Exception as error:  # the fast path is an optimisation: never let it stop a sweep
        return _fast_path_off(f"failed its self-test ({type(error).__name__}: {error})")
    if remembered is not None:
        with contextlib.suppress(OSError):  # a read-only or remote cache folder: test again next time
            remembered.write_text(f"gdjax.runs_last agrees with jax.vmap on jax {jax.__version__}\n")
    return True


def _agreement_file() -> Path | None:
    """Where a passed self-test is remembered: beside the compiled programs, once
    ``gdjax.use_compile_cache`` was called (the library writes no file otherwise)."""
    from gdjax.compile_cache import folder_in_use

    folder = folder_in_use()
    if folder is None:
        return None
    device = jax.config.jax_default_device or jax.devices()[0]  # where the test runs
    if isinstance(device, str):  # a platform name
        device = jax.devices(device)[0]
    settings = [
        Path(__file__).read_text(),
        jax.__version__,
        jaxlib.__version__,
        device.platform,
        device.device_kind,
        str(jax.config.jax_default_matmul_precision),
        str(jax.config.jax_enable_x64),
        os.environ.get("XLA_FLAGS", ""),
    ]
    key = hashlib.sha256("\n".join(settings).encode()).hexdigest()[:24]
    return Path(folder) / f"gdjax-runs-last-agrees-{key}.txt"  # not a "-cache" file: JAX's eviction skips it


def _fast_path_off(why: str) -> bool:
    warnings.warn(
        f"gdjax.runs_last: on jax {jax.__version__} the fast path {why}; sweeps in this process use "
        "jax.vmap (correct, slower; a run's last bits may then depend on its grid)",
        RuntimeWarning,
        stacklevel=3,
    )
    return False


def _self_test_corpus():
    """(name, per-run function, arguments with the runs last where batched, batched flags).

    One program, so that the check costs two small compiles: training steps
    of a network with a bias (softmax cross-entropy on integer labels, its
    gradient, a step count shared by every run, a ``cond`` on the step) in a
    ``lax.scan``, then reshapes, slices, pads, concatenations, and short and
    long sums and contractions of its result.
    """
    rng = np.random.default_rng(0)
    n_runs, n_examples, n_in, n_hidden, n_classes, many = 3, 8, 3, 4, 5, 20

    def normal(*shape):
        return rng.normal(size=shape).astype(np.float32)

    X, labels = normal(n_examples, n_in), rng.integers(0, n_classes, n_examples).astype(np.int32)
    params = {"W": normal(n_in, n_hidden, n_runs), "b": normal(n_hidden, n_runs)}
    params["V"] = normal(n_hidden, n_classes, n_runs)
    rates, wide = np.array([1e-3, 1e-2, 1e-1], np.float32), normal(2, many)

    def loss(p, X, labels):
        logits = jax.nn.relu(X @ p["W"] + p["b"][None, :]) @ p["V"]
        logits = logits - jax.nn.logsumexp(logits, axis=1, keepdims=True)
        return -jnp.mean(jnp.take_along_axis(logits, labels[:, None], axis=1))

    def train(rate, p, X, labels):
        def step(carry, inputs):
            p, count, first_high = carry
            t, jitter = inputs  # the step (shared) and a per-run input
            grads = jax.grad(loss)(p, X, labels)
            scale = lax.cond(t % 2 == 0, lambda r: r, lambda r: 0.5 * r, rate + jitter)  # per-run operand
            new_p = jax.tree.map(lambda x, g: x - scale * g / (jnp.sqrt(g * g) + 1.0), p, grads)
            value = loss(p, X, labels)
            first_high = jnp.where((first_high < 0) & (value > 1.0), t, first_high)  # shared, then per-run
            return (new_p, count + 1, first_high), (value, count)

        inputs = (jnp.arange(3, dtype=jnp.int32), rate * jnp.arange(3, dtype=jnp.float32))  # x64 or not
        (p, _, first_high), losses = lax.scan(step, (p, jnp.int32(0), jnp.int32(-1)), inputs)
        y = jnp.tanh(p["W"])
        return (
            p,
            losses,
            first_high,
            {
                "moved": jnp.pad(y.T.reshape(-1), (1, 2))[::2],
                "joined": jnp.concatenate([y, X[:3]], axis=1),
                "window": lax.dynamic_slice(y, (1, 0), (2, y.shape[1])),
                "sums": (
                    jnp.sum(y, axis=0),
                    jnp.sum(jnp.tile(y, (UNROLL_LIMIT // n_in + 1, 1)), axis=0),  # rows, then their sums
                    jnp.max(y, axis=1),
                ),
                "cumsum": jnp.cumsum(y, axis=0),
                "long dots": (wide @ jnp.tile(y, (many // n_in + 1, 1))[:many], y.T @ X[:n_in]),
            },
        )

    yield "training steps and shapes", train, (rates, params, X, labels), (True, True, False, False)
