"""Hostile templates fail fast with an error naming the limit; ordinary ones are untouched.

Each case is an attack that, before the budgets, froze a process or took gigabytes: the test
bounds the time it may take, so a missing guard shows as a slow failure, not a hang.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from flowstream_shared.expressions import (
    ExpressionError,
    check_condition,
    check_template,
    compile_condition,
    compile_template,
)
from flowstream_shared.sandbox import BudgetExceeded, RenderBudget, TemplateLimits, budget_scope
from flowstream_shared.sandbox.cache import CostBoundedCache

# Every hostile render here must fail well within this much CPU time (the budget is 1 s). CPU
# time, not wall time: a busy machine must not fail these.
FAST_S = 2.0


def _fails(source: str, context: dict[str, Any] | None = None) -> str:
    started = time.process_time()
    # The default limits, whatever an engine test in this process configured.
    with budget_scope(TemplateLimits()), pytest.raises(BudgetExceeded) as caught:
        compile_template(source).render(context or {})
    assert time.process_time() - started < FAST_S, f"{source!r} took too long to fail"
    return str(caught.value)


# Compiling computes nothing


@pytest.mark.parametrize("source", ["{{ 3**(10**7) }}", "{{ 'a' * 10**9 }}", "{{ 9**9**9 }}"])
def test_compiling_never_folds_constants(source: str) -> None:
    started = time.process_time()
    check_template(source)  # what the gateway does on every write
    compile_template(source)
    assert time.process_time() - started < 0.5


def test_a_condition_compiles_without_computing_either() -> None:
    started = time.process_time()
    check_condition("{{ 3**(10**7) }} > 1")
    assert time.process_time() - started < 0.5
    with pytest.raises(BudgetExceeded, match="bits"):
        compile_condition("{{ 3**(10**7) }} > 1").evaluate({})


# Operations that build something large


@pytest.mark.parametrize(
    ("source", "names"),
    [
        ("{{ 3**(10**7) }}", "`**`"),
        ("{{ 'a' * input.n }}", "repetition"),
        ("{{ [1, 2] * input.n }}", "repetition"),
        ("{{ (10**4000) * (10**4000) * (10**4000) * (10**4000) * (10**4000) }}", "`*`"),
        ("{{ '%999999999d' % 1 }}", "format width"),
        ("{{ '%.999999999f' % 1.5 }}", "format precision"),
        ("{{ '%*d' % (999999999, 1) }}", "format width"),
        ("{{ '%09999999d'|format(1) }}", "format width"),
        ("{{ 'a'.center(10**9) }}", "`center` width"),
        ("{{ ('a\n' * 1000).replace('a', 'a' * 2000) }}", "`replace`"),
        ("{{ 'a'|center(10**9) }}", "`center` width"),
        ("{{ 'a'.ljust(10**9) }}", "`ljust` width"),
        ("{{ 'a'.zfill(10**9) }}", "`zfill` width"),
        ("{{ ('\t' * 1000).expandtabs(9999) }}", "`expandtabs`"),
        ("{{ ('a' * 1000)|replace('a', 'a' * 1000)|replace('a', 'a' * 1000) }}", "`replace`"),
        ("{{ ('a' * 1000).replace('', 'b' * 5000) }}", "`replace`"),
        ("{{ ('x' * 100000)|list|join('y' * 100) }}", "`join`"),
        ("{{ ('y' * 100).join('x' * 100000) }}", "`join`"),
        ("{{ ('x' * 900000) ~ ('x' * 900000) }}", "concatenation (`~`)"),
        ("{{ ('x' * 900000) + ('x' * 900000) }}", "concatenation (`+`)"),
        ("{{ ('a\n' * 1000)|indent(9999) }}", "`indent`"),
        ("{{ [1]|batch(10**9, 0)|list }}", "`batch` size"),
        ("{{ [1]|slice(10**9)|list }}", "`slice` count"),
        ("{{ input|tojson(10**9) }}", "`tojson` indent"),
    ],
)
def test_an_operation_that_would_build_too_much_fails_before_it_does(
    source: str, names: str
) -> None:
    assert names in _fails(source, {"input": {"n": 10**9}})


def test_doubling_through_set_is_stopped() -> None:
    doubling = "{% set a = 'x' * 1000 %}" + "{% set a = a ~ a %}" * 30 + "{{ a|length }}"
    assert "concatenation" in _fails(doubling)


# Loops, recursion, time


def test_nested_loops_over_literal_strings_run_out_of_steps() -> None:
    text = "x" * 100
    source = (
        f"{{% for a in '{text}' %}}{{% for b in '{text}' %}}{{% for c in '{text}' %}}"
        "{% endfor %}{% endfor %}{% endfor %}"
    )
    assert "100,000 steps" in _fails(source)


def test_a_loop_filter_counts_its_iterations_too() -> None:
    source = "{% for a in 'x' * 1000 if a %}{% for b in 'x' * 1000 if b %}{% endfor %}{% endfor %}"
    assert "steps" in _fails(source)


@pytest.mark.parametrize(
    "source",
    [
        "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
        "{% for n in [input.tree] recursive %}{{ loop(n.children) }}{% endfor %}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ (1).to_bytes(10**9, 'big') }}",
    ],
)
def test_calls_other_than_the_allowed_methods_are_refused_when_compiling(source: str) -> None:
    with pytest.raises(ExpressionError, match="cannot be called"):
        check_template(source)


def test_depth_is_bounded_for_whatever_calls_remain() -> None:
    budget = RenderBudget(TemplateLimits(max_depth=3))
    for _ in range(3):
        budget.enter()
    with pytest.raises(BudgetExceeded, match="recursion deeper than 3"):
        budget.enter()


def test_a_loop_of_allowed_method_calls_runs_out_of_steps() -> None:
    source = (
        "{% for a in 'x' * 1000 %}{% for b in 'x' * 200 %}{{ a.upper() }}{% endfor %}{% endfor %}"
    )
    assert "steps" in _fails(source)


def test_a_render_past_its_cpu_budget_fails() -> None:
    source = "{% for a in 'x' * 50000 %}{{ ('y' * 100000)|upper|length }}{% endfor %}"
    limits = TemplateLimits(cpu_seconds=0.2)
    started = time.process_time()
    with budget_scope(limits), pytest.raises(BudgetExceeded, match=r"CPU budget of 0\.2s"):
        compile_template(source).render({})
    assert time.process_time() - started < 1.0


def test_output_is_bounded() -> None:
    source = "{% for a in 'x' * 1000 %}{{ 'y' * 1000 }}{% endfor %}"
    assert "output exceeds 262,144 characters" in _fails(source)


# What stays as it was


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{% for i in input.items %}{{ i }};{% endfor %}", "1;2;3;"),
        ("{{ '%5.2f' % 3.14159 }}", " 3.14"),
        ("{{ '%6s' % 'ab' }}", "    ab"),
        ("{{ input.items|join(', ') }}", "1, 2, 3"),
        ("{% set b = '[' ~ 1 ~ ']' %}{{ b }}{{ b }}", "[1][1]"),
        ("{{ input.name.startswith('A') }}", "true"),
        ("{{ 'ab' * 3 }}|{{ 2 ** 10 }}|{{ 'x'|center(5) }}", "ababab|1024|  x  "),
        ("{{ 'a-b'|replace('-', '+') }}", "a+b"),
    ],
)
def test_ordinary_templates_render_as_before(source: str, expected: str) -> None:
    values = {"input": {"items": [1, 2, 3], "name": "Ada"}}
    assert compile_template(source).render(values) == expected


@pytest.mark.parametrize(
    ("source", "light"),
    [
        ("Hello {{input.name}}!", True),
        ("{{ t1.text }}", True),
        ("{{ input.name | upper }} {{ input.x | default('-') }}", True),
        ("{% if input.a %}{{ input.b ~ '!' }}{% endif %}", True),
        ("{% for i in input.items %}{{ i }}{% endfor %}", False),
        ("{{ 'a' * 3 }}", False),
        ("{{ input.name.upper() }} {{ input.o.get('k') }}", True),
        ("{{ ', '.join(input.items) }}", False),
        ("{{ input.items | join(', ') }}", False),
        ("{% set a = 1 %}{{ a }}", False),
        ("x" * 20_000 + "{{ input.name }}", False),
    ],
)
def test_light_templates_are_told_apart(source: str, light: bool) -> None:
    assert compile_template(source).light is light


def test_an_expression_error_names_the_limit_for_the_user() -> None:
    error = _fails("{{ 'a' * input.n }}", {"input": {"n": 10**9}})
    assert "1,000,000,000" in error and "limit is 1,000,000" in error
    assert isinstance(BudgetExceeded(error), ExpressionError)


# The caches are bounded by bytes


def test_the_cost_bounded_cache_evicts_by_cost_not_count() -> None:
    cache: CostBoundedCache[str, str] = CostBoundedCache(100, lambda key, value: len(value))
    for i in range(10):
        cache.put(f"k{i}", "x" * 30)
    assert cache.total_cost <= 100 and len(cache) == 3
    assert cache.get("k9") is not None and cache.get("k0") is None
    cache.put("huge", "x" * 1000)  # larger than the whole cache: not kept
    assert cache.get("huge") is None and len(cache) == 3


def test_distinct_large_templates_do_not_grow_the_template_cache_without_bound() -> None:
    from flowstream_shared import expressions

    for i in range(300):
        compile_template(f"{{% for x in input.items %}}{i}{{{{ x }}}}{{% endfor %}}" + "a" * 90_000)
    assert expressions._templates.total_cost <= expressions.CACHE_BYTES


def test_names_a_template_binds_itself_are_not_references() -> None:
    source = (
        "{% for item in input.items %}{{ item }}{{ loop.index }}{% endfor %}"
        "{% set total = t1.text %}{{ total }}{% macro show(x) %}{{ x }}{{ t2.y }}{% endmacro %}"
        "{{ loop.index }}"
    )
    roots = {ref.root for ref in check_template(source)}
    assert roots == {"input", "t1", "t2", "loop"}  # the last `loop` is the LOOP node's
