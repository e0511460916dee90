"""Realistic benchmark data: N interactions as the gateway would have logged them, in a store.

Reproducible (same seed, same `end` and same N give the same store) and about 3 KB of text per
interaction. What one interaction looks like:
  - messages: a system prompt of 600-1,200 characters (a pool of 50 per seed, 30 for the support
    project and 20 for the coding one, a few used far more than the others; some end with the
    day's date), the earlier turns of its session, and a last user turn of 50-400 characters;
  - a completion of 200-1,500 characters when it succeeded (support answers with steps,
    coding answers often with a code block), cut short when cancelled or at `max_tokens`;
  - 3-6 labels: team t0..t49, env prod/staging/dev and customer c0..c999 always; feature
    f0..f19, region eu/us/ap/sa/af and an app version sometimes;
  - params as the gateway logs them (temperature, max_tokens, stream, user, the upstream model,
    stream_options), a replica URL, a request id, status ok (~97%), error (~2%, with the
    gateway's error text and an empty completion) or cancelled (~1%, "client disconnected").
Sessions are coherent conversations: 1-4 turns, a later turn's messages hold the earlier turns
(user turn and the previous completion), the same user, labels, model and system prompt, and
follow seconds to minutes later; a failed or cancelled turn is retried with the same question.
So 56% of interactions have no earlier turn, 25% one, 13% two and 6% three; earlier assistant
turns are the previous completions (200-1,500 characters).
Two projects (65% / 35% of the traffic), four models with uneven shares (about 32/25/25/18%),
an active A/B test in the support project from day 12 (40% of its new sessions, variant sticky
per session as the gateway routes it), ~1.5% of requests with n=2 (two choices, half of them
compared), about 30% of the successful interactions with a metric value ('quality' scalar in
[0, 1] from a grader, 'thumbs' 0/1 from the user). created_at spreads over the 30 days before
`end` with a daily and weekly rhythm and slow growth; completion ids are UUIDv7 of created_at.

The store is made by the project's Alembic migrations, with the catalog rows (models,
projects, attached models, metrics, the A/B test) written through its SQLModel classes. The
interactions go in chunks (20,000 by default, one transaction each; memory stays bounded)
through the gateway's own bulk insert (store.interactions.insert_row_batch: multi-row INSERTs
on SQLite, binary COPY on PostgreSQL; store.bulk_insert for metric values and comparisons).
For speed the generator makes the driver-ready rows itself; every chunk's first
CHECKED_RECORDS rows are compared with what store.interactions.prepare_rows makes of the same
records (the gateway's path), and any difference stops the run. The next chunk is generated in
a thread while one is written (`overlap`; the database's own work runs without the GIL).
SQLite files are written without journal or fsync and set to WAL mode at the end.

Speed on this 2-core machine (shared): SQLite ~19-20k interactions/s (~16k/s with
`--one-core`); PostgreSQL ~12-13k/s, bound by the server: a PostgreSQL backend spends ~63 µs
of CPU per interaction (JSONB input, TOAST pglz compression of the ~3 KB messages: ~20 µs,
indexes, WAL), so one COPY stream cannot pass ~16k/s here, whatever the client does.

    .venv/bin/python -m bench.realistic --rows 1000000 --sqlite realistic.db
    .venv/bin/python -m bench.realistic --rows 1000000 \\
        --postgres postgresql+psycopg://postgres@127.0.0.1:5432/bench_x
"""

from __future__ import annotations

import argparse
import bisect
import gc
import hashlib
import heapq
import math
import random
import re
import resource
import sqlite3
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from queue import Full, Queue
from statistics import NormalDist
from typing import Any

import orjson
import psycopg
from sqlalchemy import Engine, Table, event, text
from sqlalchemy.engine import make_url
from sqlmodel import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import migrations
from store.bulk_insert import insert_ignoring_conflicts, writer_kind
from store.db import create_store_engine, normalize_url
from store.interactions import (
    INTERACTION_TABLE,
    InteractionRecord,
    RowBatch,
    insert_row_batch,
    prepare_rows,
)
from store.models import (
    AbTest,
    Comparison,
    Metric,
    MetricValue,
    Model,
    Project,
    ProjectModel,
)

METRIC_VALUE_TABLE: Table = MetricValue.__table__  # type: ignore[attr-defined]
COMPARISON_TABLE: Table = Comparison.__table__  # type: ignore[attr-defined]

DEFAULT_CHUNK = 20_000
#: Records of each chunk compared with what store.interactions.prepare_rows makes of them.
CHECKED_RECORDS = 500
DAYS = 30
_US_PER_DAY = 86_400_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# -- the catalog -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """A deployed model and how it behaves (latency, tokenizer, errors, answer quality)."""

    key: str
    name: str
    upstream_model: str
    replicas: tuple[str, ...]
    ttft_ms: float  # median time to first token, short prompt
    prefill_ms_per_1k: float  # extra time to first token per 1,000 prompt tokens
    ms_per_token: float  # median decode time per completion token
    chars_per_token: float
    error_rate: float
    quality: float  # mean grader score


@dataclass(frozen=True)
class ProjectSpec:
    key: str
    name: str
    share: float
    domain: str  # "support" or "code": which texts
    models: tuple[tuple[str, float], ...]  # model key, share of the project's sessions
    default_model: str
    prompts: int  # system prompts of the pool that belong to this project


MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "llama-3.1-70b", "Llama 3.1 70B Instruct", "meta-llama/Llama-3.1-70B-Instruct",
        ("http://10.0.1.11:8000/v1", "http://10.0.1.12:8000/v1"), 420.0, 160.0, 24.0, 3.9,
        0.020, 0.78,
    ),
    ModelSpec(
        "llama-3.1-8b", "Llama 3.1 8B Instruct", "meta-llama/Llama-3.1-8B-Instruct",
        ("http://10.0.2.21:8000/v1", "http://10.0.2.22:8000/v1"), 110.0, 30.0, 8.0, 3.9,
        0.015, 0.61,
    ),
    ModelSpec(
        "qwen2.5-coder-32b", "Qwen2.5 Coder 32B", "Qwen/Qwen2.5-Coder-32B-Instruct",
        ("http://10.0.3.31:8000/v1", "http://10.0.3.32:8000/v1"), 260.0, 90.0, 15.0, 3.6,
        0.022, 0.74,
    ),
    ModelSpec(
        "mistral-small-24b", "Mistral Small 24B", "mistralai/Mistral-Small-24B-Instruct-2501",
        ("http://10.0.4.41:8000/v1", "http://10.0.4.42:8000/v1"), 190.0, 70.0, 13.0, 4.1,
        0.027, 0.70,
    ),
)  # fmt: skip
PROJECTS: tuple[ProjectSpec, ...] = (
    ProjectSpec(
        "support-bot", "Customer support assistant", 0.65, "support",
        (("llama-3.1-70b", 0.35), ("llama-3.1-8b", 0.45), ("mistral-small-24b", 0.20)),
        "llama-3.1-8b", 30,
    ),
    ProjectSpec(
        "code-assistant", "Developer copilot", 0.35, "code",
        (("qwen2.5-coder-32b", 0.70), ("llama-3.1-70b", 0.20), ("llama-3.1-8b", 0.10)),
        "qwen2.5-coder-32b", 20,
    ),
)  # fmt: skip
METRICS = (
    ("quality", "Quality", "scalar", "Grader score from 0 to 1"),
    ("thumbs", "Thumbs up", "bool", "The user clicked thumbs up (1) or down (0)"),
)
AB_TEST_KEY = "70b-vs-mistral"
AB_TEST_PROJECT = "support-bot"
AB_TEST_VARIANTS = ("llama-3.1-70b", "mistral-small-24b")
AB_TEST_START_DAY = 12  # days after the window's start
AB_TEST_SHARE = 0.4  # of the project's new sessions once it runs
#: An incident: this model answers 503 to a quarter of its requests for two hours.
INCIDENT_MODEL, INCIDENT_DAY, INCIDENT_HOURS = "mistral-small-24b", 19, (14, 16)


@dataclass(frozen=True)
class Catalog:
    """Ids of the rows the interactions reference (as the store assigned them)."""

    projects: dict[str, int]
    models: dict[str, int]
    metrics: dict[tuple[str, str], int]  # (project key, metric key) -> id
    ab_test_id: int | None
    ab_test_start_us: int


def default_catalog() -> Catalog:
    """The ids a fresh store gives the catalog rows (1, 2, ... in order of creation)."""
    return Catalog(
        projects={p.key: i + 1 for i, p in enumerate(PROJECTS)},
        models={m.key: i + 1 for i, m in enumerate(MODELS)},
        metrics={
            (p.key, m[0]): 1 + pi * len(METRICS) + mi
            for pi, p in enumerate(PROJECTS)
            for mi, m in enumerate(METRICS)
        },
        ab_test_id=1,
        ab_test_start_us=0,
    )


def create_catalog(engine: Engine, start: datetime) -> Catalog:
    """Models, projects (with attached models and a default), metrics and the A/B test, with
    creation times before the interactions (the A/B test's within the window); ids as the store
    assigns them."""
    before = start - timedelta(days=3)
    ab_start = start + timedelta(days=AB_TEST_START_DAY, hours=9, minutes=30)
    with Session(engine, expire_on_commit=False) as session:
        models: dict[str, Model] = {}
        for spec in MODELS:
            models[spec.key] = Model(
                key=spec.key,
                name=spec.name,
                upstream_urls=list(spec.replicas),
                upstream_model=spec.upstream_model,
                created_at=before,
            )
            session.add(models[spec.key])
        session.flush()
        projects: dict[str, Project] = {}
        for spec_p in PROJECTS:
            project = Project(
                key=spec_p.key,
                name=spec_p.name,
                default_model_id=models[spec_p.default_model].id,
                created_at=before + timedelta(hours=1),
            )
            session.add(project)
            projects[spec_p.key] = project
        session.flush()
        metrics: dict[tuple[str, str], Metric] = {}
        for spec_p in PROJECTS:
            project_id = projects[spec_p.key].id
            assert project_id is not None
            for model_key, _share in spec_p.models:
                model_id = models[model_key].id
                assert model_id is not None
                session.add(
                    ProjectModel(
                        project_id=project_id,
                        model_id=model_id,
                        created_at=before + timedelta(hours=2),
                    )
                )
            for key, name, kind, description in METRICS:
                metric = Metric(
                    project_id=project_id,
                    key=key,
                    name=name,
                    kind=kind,
                    description=description,
                    created_at=before + timedelta(hours=3),
                )
                session.add(metric)
                metrics[spec_p.key, key] = metric
        session.flush()
        ab_project = projects[AB_TEST_PROJECT].id
        assert ab_project is not None
        test = AbTest(
            project_id=ab_project,
            key=AB_TEST_KEY,
            metric_id=metrics[AB_TEST_PROJECT, "quality"].id,
            mode="metric",
            variants=[{"model": key, "weight": 1.0} for key in AB_TEST_VARIANTS],
            created_at=ab_start,
        )
        session.add(test)
        session.flush()
        catalog = Catalog(
            projects={key: _id(p.id) for key, p in projects.items()},
            models={key: _id(m.id) for key, m in models.items()},
            metrics={key: _id(m.id) for key, m in metrics.items()},
            ab_test_id=test.id,
            ab_test_start_us=_to_us(ab_start),
        )
        session.commit()
    return catalog


def _id(value: int | None) -> int:
    assert value is not None
    return value


# -- words and texts ---------------------------------------------------------------------------

_NOUNS_COMMON = """
account address agent answer app appointment audience backup balance branch browser budget
button calendar call campaign card charge chart chat code color contract coupon courier
currency customer dashboard day deadline delivery description device discount document draft
email error export fee feature field file folder form guide headline holiday hour import
integration invoice issue item key label language license limit link list login manager
meeting message minute month morning newsletter note notification option order package page
paragraph password payment permission phone plan policy price problem product profile project
question receipt refund region reminder reply report request return role schedule screen seat
sentence session setting shipment size statement step store subscription summary support
tax team template ticket tone tracking transfer translation update user version warehouse
warranty week weekend workspace year
"""
_NOUNS_SUPPORT = """
order invoice refund parcel delivery address subscription plan card payment receipt coupon
discount warranty return exchange courier shipment bill charge account password login profile
voucher loyalty points store branch agent appointment booking reservation seat flight ticket
luggage baggage insurance claim policy premium contract meter reading tariff router modem
signal outage technician installation appliance fridge washer mattress sofa jacket shoe size
"""
_NOUNS_CODE = """
function variable class method module package library dependency test query table column index
database schema migration endpoint request response header token cache queue worker thread
process container image cluster node pod service deployment pipeline build commit branch merge
repository directory path config environment log exception timeout retry loop array string
integer parser compiler type interface struct pointer buffer socket connection transaction
lock benchmark profiler memory latency throughput regex script command flag argument parameter
callback promise iterator generator decorator fixture mock linter formatter handler router
middleware serializer model view template component hook state reducer event listener payload
"""
_VERBS = """
check update change cancel reset open close find send receive add remove delete create move
copy export import verify confirm explain describe compare review fix debug refactor rename
split merge test deploy build run install configure enable disable restart upload download
share track return replace order pay charge refund connect sync migrate optimize cache index
parse format validate handle retry print read write load save store fetch call schedule book
contact reach answer help show list sort filter group count measure summarize translate
rewrite shorten draft plan organize improve avoid prevent allow keep need use try start stop
finish wait work fail look support include require expect mention ask suggest recommend
apply process approve reject split extend renew transfer block unlock edit publish archive
"""
_ADJECTIVES = """
new old current previous next last first second wrong correct missing duplicate invalid valid
empty full large small slow fast quick simple complex clear short long detailed brief friendly
polite formal careful safe secure private public shared local remote default custom monthly
annual weekly daily free premium paid pending active expired broken damaged late early easy
hard different same similar specific general main extra additional optional required recent
original final internal external available possible likely common rare important urgent
helpful accurate relevant concise consistent reliable stable flaky async nested generic
readable efficient outdated unexpected strange annoying
"""
_ADVERBS = """
quickly carefully clearly always never usually often sometimes already still again now today
yesterday soon only just really probably exactly directly automatically manually briefly
politely immediately later then finally also instead actually currently recently correctly
properly safely randomly twice
"""
_PREPOSITIONS = "in on for with from to about after before without during under into through by"
_COMPANIES = (
    "Northwind", "Acme Cloud", "Brightpath Bank", "Zephyr Telecom", "Lumen Retail", "Orbit Travel",
    "Helios Energy", "Cobalt Insurance", "Juniper Health", "Atlas Logistics", "Pinecrest Homes",
    "Nimbus Software", "Redwood Outdoor", "Quanta Labs", "Harbor Foods",
)  # fmt: skip
_PERSONAS = ("Ava", "Max", "Nora", "Leo", "Iris", "Sam", "Mila", "Theo", "Zoe", "Finn")
_LANGUAGES = ("Python", "TypeScript", "Go", "Rust", "Java", "SQL", "Kotlin", "C#")
_EXCEPTIONS = (
    "KeyError", "TypeError", "ValueError", "TimeoutError", "NullPointerException",
    "IndexError", "AttributeError", "ConnectionResetError", "panic", "SyntaxError",
)  # fmt: skip


def _words(block: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(block.split()))


def _third_person(verb: str) -> str:
    if verb.endswith(("s", "sh", "ch", "x", "z", "o")):
        return verb + "es"
    if verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def _plural(noun: str) -> str:
    if noun.endswith(("s", "sh", "ch", "x", "z")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


_SLOT = re.compile(r"\{(Ns|N|Vs|V|A|R|P|D|NUM|ID|CO|LANG|EXC|n|v|C)\}")
_A_BEFORE_VOWEL = re.compile(r"\b([Aa]) ([aeiouAEIOU])")


class _Filler:
    """Fills sentence templates: {N} noun, {Ns} plural, {V} verb, {Vs} verb with -s, {A}
    adjective, {R} adverb, {P} preposition, {D} determiner, {NUM} number, {ID} order number,
    {CO} company, {LANG} language, {EXC} exception name, {n}/{v}/{C} identifier parts."""

    def __init__(self, rng: random.Random, domain: str) -> None:
        self.rng = rng
        special = _words(_NOUNS_SUPPORT if domain == "support" else _NOUNS_CODE)
        common = _words(_NOUNS_COMMON)
        # Zipf-like use: a domain word twice as likely as a common one, early words more often.
        self.nouns = special + special + common
        self.verbs = _words(_VERBS)
        self.adjectives = _words(_ADJECTIVES)
        self.adverbs = _words(_ADVERBS)
        self.prepositions = _words(_PREPOSITIONS)
        self.identifiers = tuple(n for n in _words(_NOUNS_CODE) if n.isalpha())

    def _pick(self, words: Sequence[str]) -> str:
        # Skewed towards the start of the list, like word frequencies in real text.
        return words[int(len(words) * self.rng.random() ** 1.6)]

    def fill(self, template: str) -> str:
        """TEMPLATE with its slots filled; {n} and {v} stand for one identifier part each
        throughout (so code names one variable the same way), {C} is {n} capitalized."""
        bound: dict[str, str] = {}

        def slot(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in ("n", "v", "C"):
                return self._slot(name, self.rng)
            if name == "C":
                name = "n"
            if name not in bound:
                bound[name] = self._slot(name, self.rng)
            return bound[name].capitalize() if match.group(1) == "C" else bound[name]

        sentence = _SLOT.sub(slot, template)
        sentence = _A_BEFORE_VOWEL.sub(r"\1n \2", sentence)
        return sentence[0].upper() + sentence[1:]

    def _slot(self, slot: str, rng: random.Random) -> str:
        if slot == "N":
            return self._pick(self.nouns)
        if slot == "Ns":
            return _plural(self._pick(self.nouns))
        if slot == "V":
            return self._pick(self.verbs)
        if slot == "Vs":
            return _third_person(self._pick(self.verbs))
        if slot == "A":
            return self._pick(self.adjectives)
        if slot == "R":
            return self._pick(self.adverbs)
        if slot == "P":
            return rng.choice(self.prepositions)
        if slot == "D":
            return rng.choice(("the", "the", "the", "a", "my", "this", "your", "our", "every"))
        if slot == "NUM":
            return str(int(rng.lognormvariate(2.5, 1.2)) + 1)
        if slot == "ID":
            return f"#{rng.randrange(100000, 999999)}"
        if slot == "CO":
            return rng.choice(_COMPANIES)
        if slot == "LANG":
            return rng.choice(_LANGUAGES)
        if slot == "EXC":
            return rng.choice(_EXCEPTIONS)
        if slot == "n":
            return rng.choice(self.identifiers)
        if slot == "v":
            return rng.choice(self.verbs)
        raise ValueError(slot)


_USER_TEMPLATES = (
    "How do I {V} {D} {N} {P} {D} {N}?",
    "I can't {V} my {N} {P} the {A} {N}.",
    "Why does my {N} {V} {R}?",
    "Can you {V} {D} {N} {P} {D} {A} {N}?",
    "My {N} {Vs} {R} since the {A} {N}.",
    "I tried to {V} the {N} {NUM} times but the {N} is still {A}.",
    "Is it possible to {V} {D} {A} {N} {P} {D} {N}?",
    "Please {V} my {N} and {V} the {N}.",
    "What is the {A} way to {V} {D} {N}?",
    "The {N} {Vs} a {A} {N} when I {V} it.",
    "Where can I {V} the {A} {N}?",
    "I need to {V} {D} {N} before the {A} {N}.",
    "Thanks, but the {N} still {Vs} {R}.",
    "It {Vs} {R} but the {N} is {A}.",
    "Do you {V} {Ns} {P} {D} {A} {N}?",
    "We want to {V} the {Ns} {R}.",
    "Could you explain why the {N} {Vs} {D} {A} {N}?",
)
_USER_SUPPORT = (
    "Order {ID} has not arrived yet.",
    "I was charged twice for order {ID}.",
    "The {N} for order {ID} is {A}.",
    "I have been a {CO} customer for {NUM} years.",
    "My {N} expired {NUM} days ago.",
)
_USER_CODE = (
    "Write a {LANG} function that {Vs} {D} {N} {P} {D} {N}.",
    "Why does this {N} throw {EXC} when the {N} is {A}?",
    "Here is the error: {EXC} in {n}_{v}.py line {NUM}.",
    "How can I {V} the {N} without a {A} {N}?",
    "Refactor this {N} so it {Vs} the {N} {R}.",
    "Is there a {A} {LANG} library to {V} {Ns}?",
    "The {N} takes {NUM} seconds to {V} the {N}.",
)
_ASSISTANT_TEMPLATES = (
    "You can {V} {D} {N} {P} {D} {A} {N}.",
    "To {V} {D} {N}, open {D} {N} and {V} {D} {A} {N}.",
    "If {D} {N} {Vs} {R}, {V} {D} {N} {R}.",
    "This {Vs} {D} {A} {N} {P} {D} {N}.",
    "The {A} {N} {Vs} {D} {N} {P} {D} {N}.",
    "Make sure {D} {N} is {A} before you {V} {D} {N}.",
    "Note that {D} {A} {N} {Vs} {D} {N}.",
    "In most cases the {N} {Vs} {R} {P} {NUM} {Ns}.",
    "Once the {N} is {A}, you can {V} {D} {N}.",
    "That usually means the {N} {Vs} {D} {A} {N}.",
    "The {N} and the {N} are {A} {P} {D} {N}.",
    "It is {A} to {V} {D} {N} {R}.",
    "Alternatively, {V} {D} {A} {N} {P} {D} {N}.",
    "Keep in mind that {Ns} {V} {R} {P} {D} {N}.",
)
_ASSISTANT_SUPPORT = (
    "I have checked order {ID} and the {N} is {A}.",
    "Your refund of {NUM} euros will reach your {N} in {NUM} days.",
    "I'm sorry about the {A} {N}.",
    "Our {A} team will {V} the {N} {R}.",
)
_ASSISTANT_CODE = (
    "The {EXC} comes from the {A} {N} in {n}_{v}.",
    "Use a {A} {N} so the {N} {Vs} {R}.",
    "This runs in O(n) because the {N} {Vs} each {N} once.",
    "Add a test that {Vs} the {A} {N}.",
)
_INTROS_SUPPORT = (
    "Thanks for reaching out!",
    "I'm sorry to hear that.",
    "Happy to help with that.",
    "Good question.",
    "Sure, here is how to do it.",
    "I understand, let me help.",
)
_INTROS_CODE = (
    "Sure, here is one way to do it.",
    "Good question.",
    "The problem is in the loop.",
    "Here is a version that works.",
    "Let's go through it step by step.",
)
_CLOSINGS = (
    "Let me know if you need anything else.",
    "I hope this helps!",
    "Is there anything else I can help with?",
    "Feel free to ask if something is unclear.",
)
_CODE_TEMPLATES = (
    "```python\ndef {v}_{n}({n}s, limit=None):\n    result = []\n    for item in {n}s:\n"
    "        if item.{v}():\n            result.append(item)\n    return result[:limit]\n```",
    "```python\nasync def {v}_{n}(client, {n}_id: int) -> dict:\n"
    '    response = await client.get(f"/{n}s/{{n}_id}")\n    response.raise_for_status()\n'
    "    return response.json()\n```",
    "```typescript\nexport async function {v}{C}({n}: {C}): Promise<void> {\n"
    "  const result = await api.{v}({n}.id);\n  if (!result.ok) {\n"
    "    throw new Error(`cannot {v} {n}: ${result.status}`);\n  }\n}\n```",
    "```sql\nSELECT {n}_id, count(*) AS total\nFROM {n}s\n"
    "WHERE created_at > now() - interval '7 days'\nGROUP BY {n}_id\n"
    "ORDER BY total DESC\nLIMIT 20;\n```",
    "```go\nfunc {v}{C}(ctx context.Context, {n} *{C}) error {\n"
    '\tif {n} == nil {\n\t\treturn errors.New("{n} is nil")\n\t}\n'
    "\treturn store.{C}(ctx, {n})\n}\n```",
    "```python\nclass {C}Cache:\n    def __init__(self, size: int = 128) -> None:\n"
    "        self._items: dict[str, object] = {}\n        self._size = size\n\n"
    "    def get(self, key: str) -> object | None:\n        return self._items.get(key)\n```",
)
_SYSTEM_OPENINGS_SUPPORT = (
    "You are {PERSONA}, a friendly customer support assistant for {CO}.",
    "You are the virtual help desk of {CO}. You answer customers on the website chat.",
    "You are {PERSONA}, {CO}'s support agent for orders, billing and accounts.",
)
_SYSTEM_OPENINGS_CODE = (
    "You are {PERSONA}, a senior software engineer who helps developers at {CO}.",
    "You are a coding assistant inside the {CO} developer portal.",
    "You are an expert {LANG} reviewer. You help engineers write correct, readable code.",
)
_SYSTEM_RULES = (
    "Always {V} the {N} {R}.",
    "Never {V} {D} {A} {N} {P} the customer.",
    "If the user asks about {Ns}, {V} the {N} first.",
    "Answer in a {A} and {A} tone.",
    "Keep answers under {NUM} words unless the user asks for more.",
    "Use the {A} {N} when you {V} the {N}.",
    "Do not mention the {A} {N}.",
    "When the {N} is {A}, ask the user to {V} the {N}.",
    "Escalate to a human agent when the {N} {Vs} a {A} {N}.",
    "Prefer {A} {Ns} over {A} {Ns}.",
    "Quote the {N} exactly as the user wrote it.",
    "Refuse to {V} {Ns} that belong to another user.",
    "Greet the user by name when the {N} is {A}.",
    "Summarize the {N} in one {A} sentence before you answer.",
    "Ask one question at a time when the {N} is unclear.",
    "Never promise a {N} or a {N} you cannot {V}.",
    "Link to the help center article about {Ns} when it is relevant.",
    "Do not share {A} {Ns} or internal {Ns}.",
    "If you are not sure about the {N}, say so and {V} the {N}.",
    "Use the customer's language and a {A} tone.",
    "Offer to {V} the {N} only after you {V} the {N}.",
    "Write dates as YYYY-MM-DD and amounts with their currency.",
    "Remind the user that {Ns} {V} {R} {P} {D} {N}.",
    "Format lists with short bullet points.",
    "Check the {N} against the {A} {N} before you {V} it.",
)
_SYSTEM_RULES_CODE = (
    "Show code in fenced blocks and name the {LANG} version.",
    "Explain why the {N} {Vs} before you {V} it.",
    "Prefer the standard library over a new {N}.",
    "Point out {A} {Ns} and missing tests.",
)


class Corpus:
    """Sentences drawn from a pool and joined into one long text; a text of some length is a
    slice of it from one sentence start to another (a few steps, however long the text)."""

    def __init__(self, rng: random.Random, sentences: Sequence[str], size: int) -> None:
        picks = [sentences[int(len(sentences) * rng.random())] for _ in range(size)]
        self.text = " ".join(picks)
        self.starts: list[int] = []
        position = 0
        for sentence in picks:
            self.starts.append(position)
            position += len(sentence) + 1
        self.starts.append(position)  # one past the end, as if a space followed
        self.count = size
        self.longest = max(map(len, picks)) + 1

    def take(self, rng: random.Random, lo: int, hi: int, target: int) -> str:
        """Whole sentences, about TARGET characters, at least LO and at most HI."""
        starts, count = self.starts, self.count
        for _ in range(1000):
            first = int(count * rng.random())
            begin = starts[first]
            # The first sentence boundary at or after TARGET characters: a first guess that
            # cannot overshoot (as if every sentence were the longest), then forward.
            last = first + 1 + target // self.longest
            if last > count:
                continue  # ran past the end: start elsewhere
            end = begin + target + 1
            while last < count and starts[last] < end:
                last += 1
            if starts[last] - 1 - begin > hi:
                last -= 1
            if last > first and starts[last] - 1 - begin >= lo:
                return self.text[begin : starts[last] - 1]
        # No run of whole sentences fits (HI shorter than any sentence): cut at a space.
        return self.text[begin : begin + hi].rsplit(" ", 1)[0]


@dataclass(frozen=True)
class Texts:
    """System prompts and text corpora of one seed (support and code domains)."""

    system_prompts: tuple[str, ...]
    user: dict[str, Corpus]  # domain -> user turns
    assistant: dict[str, Corpus]  # domain -> answers
    steps: dict[str, tuple[str, ...]]
    code: tuple[str, ...]


def _system_prompt(rng: random.Random, filler: _Filler, domain: str) -> str:
    openings = _SYSTEM_OPENINGS_SUPPORT if domain == "support" else _SYSTEM_OPENINGS_CODE
    rules = _SYSTEM_RULES + (_SYSTEM_RULES_CODE if domain == "code" else ())
    opening = rng.choice(openings).replace("{PERSONA}", rng.choice(_PERSONAS))
    target = rng.randint(620, 1150)
    parts = [filler.fill(opening)]
    size = len(parts[0])
    bullets = rng.random() < 0.5
    if bullets:
        parts.append("\n\nRules:")
    for template in rng.sample(rules, len(rules)):
        if size >= target:
            break
        rule = filler.fill(template)
        if size + len(rule) + 3 > 1200:
            continue
        parts.append(("\n- " if bullets else " ") + rule)
        size = len("".join(parts))
    prompt = "".join(parts)
    while len(prompt) < 600:  # a long last rule did not fit: a short one
        prompt += " " + filler.fill("Be {A}.")
    return prompt


@lru_cache(maxsize=2)
def texts_for(seed: int | str) -> Texts:
    """The 50 system prompts and the corpora of SEED (made once per process, ~1.5 s, ~60 MB):
    30,000 distinct user sentences and 60,000 answer sentences per domain, drawn into corpora
    of 6 and 16 MB, so that texts rarely repeat."""
    rng = random.Random(f"interlog-realistic-texts-{seed}")
    fillers = {domain: _Filler(rng, domain) for domain in ("support", "code")}
    support, code = PROJECTS[0].prompts, PROJECTS[1].prompts
    prompts = [_system_prompt(rng, fillers["support"], "support") for _ in range(support)]
    prompts += [_system_prompt(rng, fillers["code"], "code") for _ in range(code)]

    def corpus(domain: str, templates: Sequence[str], special: Sequence[str], pool: int) -> Corpus:
        filler = fillers[domain]
        both = tuple(templates) + tuple(special) * 2
        sentences = [filler.fill(rng.choice(both)) for _ in range(pool)]
        return Corpus(rng, sentences, pool * 4)

    user = {
        "support": corpus("support", _USER_TEMPLATES, _USER_SUPPORT, 30_000),
        "code": corpus("code", _USER_TEMPLATES, _USER_CODE, 30_000),
    }
    assistant = {
        "support": corpus("support", _ASSISTANT_TEMPLATES, _ASSISTANT_SUPPORT, 60_000),
        "code": corpus("code", _ASSISTANT_TEMPLATES, _ASSISTANT_CODE, 60_000),
    }
    steps = {
        domain: tuple(
            fillers[domain].fill(
                rng.choice(("{V} the {A} {N} {P} the {N}.", "{V} {D} {N} and {V} the {N}."))
            )
            for _ in range(5_000)
        )
        for domain in ("support", "code")
    }
    snippets = tuple(fillers["code"].fill(rng.choice(_CODE_TEMPLATES)) for _ in range(5_000))
    return Texts(tuple(prompts), user, assistant, steps, snippets)


def user_text(rng: random.Random, texts: Texts, domain: str) -> str:
    """A user turn: 50-400 characters, most of them short."""
    return texts.user[domain].take(rng, 50, 400, int(rng.triangular(50, 400, 110)))


def completion_text(rng: random.Random, texts: Texts, domain: str) -> str:
    """An answer of 200-1,500 characters: an opening, sentences, often steps or code, and a
    closing line."""
    target = int(rng.triangular(200, 1500, 650))
    corpus = texts.assistant[domain]
    intro = rng.choice(_INTROS_SUPPORT if domain == "support" else _INTROS_CODE)
    parts = [intro]
    length = len(intro)
    roll = rng.random()
    if domain == "code" and roll < 0.5 and target > 500:
        snippet = texts.code[int(len(texts.code) * rng.random())]
        if length + len(snippet) + 250 <= 1500:
            body = corpus.take(rng, 1, 300, int(rng.uniform(60, 250)))
            parts += [" ", body, "\n\n", snippet, "\n\n"]
            length += len(body) + len(snippet) + 5
    elif roll < 0.35 and target > 400:
        parts.append("\n\n")
        steps = texts.steps[domain]
        for number in range(1, rng.randint(3, 6)):
            step = steps[int(len(steps) * rng.random())]
            parts.append(f"{number}. {step}\n")
            length += len(step) + 4
        parts.append("\n")
        length += 3
    closing = rng.choice(_CLOSINGS) if rng.random() < 0.6 else ""
    room = target - length - len(closing)
    if room > 1:
        body = corpus.take(rng, 1, max(1, 1500 - length - len(closing) - 2), room)
        if parts[-1] not in ("\n", "\n\n"):
            parts.append(" ")
        parts.append(body)
    if closing:
        parts.append(("" if parts[-1].endswith("\n") else " ") + closing)
    answer = "".join(parts).strip()
    while len(answer) < 200:
        answer += " " + corpus.take(rng, 1, 200, 100)
    return answer[:1500]


# -- time ---------------------------------------------------------------------------------------


def _to_us(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


class Clock:
    """Times of N requests over [start, end): a daily rhythm (European and American working
    hours), quieter weekends and 30% growth over the window. Request i falls in its own slice
    of the traffic, so times increase with i."""

    def __init__(self, start_us: int, end_us: int) -> None:
        self.start_us, self.end_us = start_us, end_us
        minutes = max(1, (end_us - start_us) // 60_000_000)
        self._step_us = (end_us - start_us) / minutes
        cumulative = [0.0]
        total = 0.0
        for minute in range(minutes):
            moment = _from_us(int(start_us + minute * self._step_us))
            hour = moment.hour + moment.minute / 60
            daily = (
                0.25
                + 0.6 * math.exp(-(((hour - 10.5) / 3.2) ** 2))
                + 0.8 * math.exp(-(((hour - 17.5) / 3.5) ** 2))
            )
            weekly = 0.5 if moment.weekday() >= 5 else 1.0
            growth = 0.85 + 0.3 * minute / minutes
            total += daily * weekly * growth
            cumulative.append(total)
        self._cumulative = [value / total for value in cumulative]

    def at(self, fraction: float) -> int:
        """The time (µs) below which FRACTION of the traffic falls."""
        cumulative = self._cumulative
        index = min(bisect.bisect_right(cumulative, fraction), len(cumulative) - 1)
        low, high = cumulative[index - 1], cumulative[index]
        within = (fraction - low) / (high - low) if high > low else 0.0
        return min(self.end_us - 1, int(self.start_us + (index - 1 + within) * self._step_us))


# -- ids ----------------------------------------------------------------------------------------

_V7 = (0x7 << 76) | (0b10 << 62)
_V7_RANDOM = ((1 << 80) - 1) & ~((0xF << 76) | (0b11 << 62))
_V4_CLEAR = ~((0xF << 76) | (0b11 << 62))
_V4_SET = (0x4 << 76) | (0b10 << 62)


def _canonical(value: int) -> str:
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _uuid7_int(rng: random.Random, us: int) -> int:
    return ((us // 1000) << 80) | _V7 | (rng.getrandbits(80) & _V7_RANDOM)


def uuid7_at(rng: random.Random, us: int) -> str:
    """A UUIDv7 (canonical text) carrying the millisecond of US (µs since the epoch), its other
    bits from RNG: as store.ids.uuid7_text_at makes them, but reproducible."""
    return _canonical(_uuid7_int(rng, us))


def uuid4_from(rng: random.Random) -> str:
    return _canonical((rng.getrandbits(128) & _V4_CLEAR) | _V4_SET)


def _unit_hash(*parts: str) -> float:
    """ingest.routing.unit_hash: how the gateway picks an A/B variant for a session."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


# -- rows as the drivers take them --------------------------------------------------------------

INTERACTION_COLUMNS = (
    "completion_id", "request_id", "choice_index", "project_id", "model_id", "ab_test_id",
    "ab_variant", "replica", "session_id", "user_id", "labels", "messages", "params",
    "completion", "tool_calls", "finish_reason", "prompt_tokens", "completion_tokens", "ttft_ms",
    "latency_ms", "status", "error", "source", "created_at",
)  # fmt: skip
assert tuple(c.name for c in INTERACTION_TABLE.columns) == INTERACTION_COLUMNS, (
    "store.models.Interaction changed: update bench/realistic.py's row tuples"
)
#: Kinds of writer (store.bulk_insert.writer_kind) this module makes rows for itself.
KINDS = ("sqlite", "psycopg")


def _uuid_for(kind: str | None, value: int) -> Any:
    """A UUID as the writer of KIND takes it (store.bulk_insert's converters)."""
    if kind == "sqlite":
        return f"{value:032x}"
    if kind == "psycopg":
        return value.to_bytes(16, "big")
    return None


# Quantiles of the standard normal distribution: a lognormal factor is a table look-up.
_QUANTILES = 4096
_NORMAL = [NormalDist().inv_cdf((i + 0.5) / _QUANTILES) for i in range(_QUANTILES)]
_LOGNORMAL_35 = [math.exp(0.35 * z) for z in _NORMAL]
_LOGNORMAL_15 = [math.exp(0.15 * z) for z in _NORMAL]


# -- sessions and requests ----------------------------------------------------------------------


@dataclass
class _Session:
    id: str
    id_row: Any  # the id as the writer takes it
    project: ProjectSpec
    project_id: int
    model: ModelSpec
    model_id: int
    ab: bool
    user_id: str | None
    labels: dict[str, str]
    labels_json: str
    system: str
    system_json: str  # the system message as JSON
    params: dict[str, Any]  # the request's, without model, n and stream_options
    stream: bool
    replica: str | None  # sticky when the client sends its session id
    turns_left: int
    history: list[dict[str, str]] = field(default_factory=list)
    history_json: list[str] = field(default_factory=list)  # each message as JSON
    history_chars: int = 0  # characters of their contents
    retry: str | None = None  # the user turn to send again after a failure


@dataclass
class Chunk:
    """One transaction's worth: the interaction records (as the gateway journals them; when
    the chunk carries rows, only its first CHECKED_RECORDS), the interactions as rows for the
    writer (interaction and interaction_label tuples), metric values and comparisons (dicts by
    column)."""

    records: list[InteractionRecord] = field(default_factory=list)
    interactions: list[tuple[Any, ...]] = field(default_factory=list)
    labels: list[tuple[Any, ...]] = field(default_factory=list)
    metric_values: list[dict[str, Any]] = field(default_factory=list)
    comparisons: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Stats:
    interactions: int = 0
    labels: int = 0
    metric_values: int = 0
    comparisons: int = 0
    sessions: int = 0
    text_bytes: int = 0  # messages + completion + labels + params + error, as stored (JSON)
    content_chars: int = 0  # message contents + completion
    statuses: Counter[str] = field(default_factory=Counter)
    models: Counter[str] = field(default_factory=Counter)
    earlier_turns: Counter[int] = field(default_factory=Counter)


@dataclass(frozen=True)
class _Failure:
    error: str
    latency_ms: float
    partial: str = ""
    ttft_ms: float | None = None
    no_replica: bool = False


_VERSIONS = ("2.3.1", "2.4.0", "2.4.2", "2.5.0", "2.6.0", "3.0.0")
_REGIONS = (("eu", 0.38), ("us", 0.37), ("ap", 0.15), ("sa", 0.06), ("af", 0.04))
_ENVS = (("prod", 0.82), ("staging", 0.12), ("dev", 0.06))
_SESSION_TURNS = ((1, 0.55), (2, 0.22), (3, 0.13), (4, 0.10))
_THUMBS_DOWN_REASONS = ("wrong answer", "not helpful", "too long", "did not follow instructions")


def _weighted(choices: Sequence[tuple[Any, float]], point: float) -> Any:
    """The choice whose share of [0, 1) holds POINT."""
    for value, share in choices:
        point -= share
        if point < 0:
            return value
    return choices[-1][0]


class Generator:
    """Requests in time order, in chunks; its state is bounded (the open sessions only).

    KIND ("sqlite", "psycopg" or None) says for which writer each chunk also carries rows."""

    def __init__(
        self,
        n: int,
        *,
        seed: int = 1,
        end: datetime | None = None,
        catalog: Catalog | None = None,
        chunk: int = DEFAULT_CHUNK,
        kind: str | None = None,
        rng: random.Random | None = None,
        texts: Texts | None = None,
    ) -> None:
        if kind not in (None, *KINDS):
            raise ValueError(f"no rows for a writer of kind {kind!r}")
        self.n, self.chunk, self.kind = n, chunk, kind
        #: Records kept per chunk when it carries rows (those check_rows compares).
        self.keep_records = CHECKED_RECORDS
        self.rng = rng or random.Random(seed)
        self.texts = texts or texts_for(seed)
        self.end_us = _to_us(_window(end))
        self.start_us = start = self.end_us - DAYS * _US_PER_DAY
        self.catalog = catalog or default_catalog()
        self.models = {spec.key: spec for spec in MODELS}
        self.ab_start_us = self.catalog.ab_test_start_us or (
            start + AB_TEST_START_DAY * _US_PER_DAY + (9 * 60 + 30) * 60_000_000
        )
        incident_day = start - start % _US_PER_DAY + INCIDENT_DAY * _US_PER_DAY
        self.incident = (
            incident_day + INCIDENT_HOURS[0] * 3_600_000_000,
            incident_day + INCIDENT_HOURS[1] * 3_600_000_000,
        )
        self.stats = Stats()
        self._due: list[tuple[int, int, _Session]] = []  # (due µs, sequence, session)
        self._sequence = 0
        self._prompt_offsets = {PROJECTS[0].key: 0, PROJECTS[1].key: PROJECTS[0].prompts}
        self._system_json: dict[str, str] = {}  # system prompt -> its message as JSON
        self._dates: dict[int, str] = {}  # day since the epoch -> YYYY-MM-DD

    # -- sessions --

    def _date(self, day: int) -> str:
        """YYYY-MM-DD of DAY (days since the epoch)."""
        date = self._dates.get(day)
        if date is None:
            date = self._dates[day] = (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%d")
        return date

    def new_session(self, now_us: int) -> _Session:
        """A new conversation starting at NOW_US: project, model (or A/B variant), user,
        labels, system prompt, sampling parameters and how many turns it will have."""
        rng = self.rng
        project = PROJECTS[0] if rng.random() < PROJECTS[0].share else PROJECTS[1]
        id_int = (rng.getrandbits(128) & _V4_CLEAR) | _V4_SET
        session_id = _canonical(id_int)
        ab = (
            project.key == AB_TEST_PROJECT
            and self.catalog.ab_test_id is not None
            and now_us >= self.ab_start_us
            and rng.random() < AB_TEST_SHARE
        )
        if ab:  # the gateway's pick_variant, equal weights: sticky per session
            point = _unit_hash(AB_TEST_KEY, session_id) * len(AB_TEST_VARIANTS)
            model = self.models[AB_TEST_VARIANTS[int(point)]]
        else:
            model = self.models[_weighted(project.models, rng.random())]
        user_number = int(20_000 * rng.random() ** 2.5)  # a few users send most requests
        user_id = f"user-{user_number:05d}" if rng.random() < 0.88 else None
        customer = (user_number * 7919 + (0 if user_id else rng.randrange(1000))) % 1000
        labels = {
            "team": f"t{rng.randrange(50)}",
            "env": _weighted(_ENVS, rng.random()),
            "customer": f"c{customer}",
        }
        if rng.random() < 0.5:
            labels["feature"] = f"f{int(20 * rng.random() ** 1.5)}"
        if rng.random() < 0.6:  # mostly the customer's own region
            where = (customer * 37 % 100) / 100 if rng.random() < 0.9 else rng.random()
            labels["region"] = _weighted(_REGIONS, where)
        if rng.random() < 0.3:  # the client app's version: newer ones appear over time
            elapsed = (now_us - self.start_us) / (DAYS * _US_PER_DAY)
            newest = min(len(_VERSIONS), 3 + int(4 * elapsed))
            labels["version"] = _VERSIONS[max(0, newest - 1 - int(3 * rng.random() ** 2))]
        offset = self._prompt_offsets[project.key]
        system = self.texts.system_prompts[offset + int(project.prompts * rng.random() ** 2)]
        if rng.random() < 0.3:
            system += f"\nToday's date is {self._date(now_us // _US_PER_DAY)}."
        system_json = self._system_json.get(system)
        if system_json is None:
            system_json = orjson.dumps({"role": "system", "content": system}).decode()
            self._system_json[system] = system_json
        params: dict[str, Any] = {}
        temperature = rng.choice((None, 0.0, 0.2, 0.7, 0.7, 1.0))
        if temperature is not None:
            params["temperature"] = temperature
        max_tokens = rng.choice((None, None, 256, 512, 1024, 2048))
        if max_tokens is not None:
            params["max_tokens"] = max_tokens
        stream = rng.random() < 0.7
        if stream or rng.random() < 0.3:
            params["stream"] = stream
        if user_id is not None:
            params["user"] = user_id
        turns = _weighted(_SESSION_TURNS, rng.random())
        replica = rng.choice(model.replicas) if turns > 1 else None
        self.stats.sessions += 1
        return _Session(
            id=session_id,
            id_row=_uuid_for(self.kind, id_int),
            project=project,
            project_id=self.catalog.projects[project.key],
            model=model,
            model_id=self.catalog.models[model.key],
            ab=ab,
            user_id=user_id,
            labels=labels,
            labels_json=orjson.dumps(labels).decode(),
            system=system,
            system_json=system_json,
            params=params,
            stream=stream,
            replica=replica,
            turns_left=turns,
        )

    # -- requests --

    def request(self, now_us: int, session: _Session, choices: int, chunk: Chunk) -> int:
        """Log one chat request of SESSION at NOW_US into CHUNK, as the gateway would (one
        interaction per choice; one only when the upstream failed). Returns how many
        interactions it made."""
        rng, stats, model, kind = self.rng, self.stats, session.model, self.kind
        random_ = rng.random
        keep_records = kind is None or len(chunk.interactions) < self.keep_records
        domain = session.project.domain
        question = session.retry or user_text(rng, self.texts, domain)
        messages = [
            {"role": "system", "content": session.system},
            *session.history,
            {"role": "user", "content": question},
        ]
        prompt_chars = len(session.system) + session.history_chars + len(question)
        cpt = model.chars_per_token
        prompt_tokens = int(prompt_chars / cpt) + 4 * len(messages) + 3
        params = dict(session.params)
        if choices > 1:
            params["n"] = choices
        params["model"] = model.upstream_model
        if session.stream:
            params["stream_options"] = {"include_usage": True}
        replica: str | None = session.replica or model.replicas[int(2 * random_())]
        ttft = (model.ttft_ms + model.prefill_ms_per_1k * prompt_tokens / 1000) * (
            _LOGNORMAL_35[int(_QUANTILES * random_())]
        )
        error_rate = model.error_rate
        if model.key == INCIDENT_MODEL and self.incident[0] <= now_us < self.incident[1]:
            error_rate = 0.25
        roll = random_()
        status = "error" if roll < error_rate else "cancelled" if roll < error_rate + 0.01 else "ok"

        error: str | None = None
        finishes: list[str | None]
        ttft_ms: float | None
        if status == "error":
            failure = self._failure(rng, model, now_us)
            error, latency, ttft_ms = failure.error, failure.latency_ms, failure.ttft_ms
            if ttft_ms is None:  # an error body: its first chunk is the whole answer
                ttft_ms = latency - 0.05 - 0.3 * random_()
            completions, finishes = [failure.partial], [None]
            if failure.no_replica:
                replica = None
        else:
            completions = [completion_text(rng, self.texts, domain) for _ in range(choices)]
            finishes = ["stop"] * choices
            max_tokens = params.get("max_tokens")
            for i, answer in enumerate(completions):
                if max_tokens is not None and len(answer) / cpt > max_tokens:
                    completions[i] = answer[: int(max_tokens * cpt)].rsplit(" ", 1)[0]
                    finishes[i] = "length"
            ttft_ms = ttft
            longest = len(completions[0]) if choices == 1 else max(map(len, completions))
            generated = longest / cpt
            decode = model.ms_per_token * _LOGNORMAL_15[int(_QUANTILES * random_())]
            latency = ttft + generated * decode
            if status == "cancelled":  # the client went away: what came so far, if anything
                error = "client disconnected"
                kept = random_() if session.stream else 0.0
                if kept < 0.1:
                    completions = [""] * choices
                    latency, ttft_ms = ttft * (0.1 + 0.9 * random_()), None
                else:
                    completions = [a[: int(len(a) * kept)].rsplit(" ", 1)[0] for a in completions]
                    latency = ttft + (latency - ttft) * kept
                finishes = [None] * choices
            elif not session.stream:
                ttft_ms = latency - 0.05 - 0.45 * random_()  # the whole body at once
            latency += 0.2 + 1.3 * random_()  # the gateway's own part
        if status == "ok":
            completion_tokens = [max(1, round(len(answer) / cpt)) for answer in completions]
        else:  # no usage from the upstream: the gateway estimates 4 characters a token
            prompt_tokens = math.ceil(prompt_chars / 4)
            completion_tokens = [math.ceil(len(answer) / 4) for answer in completions]

        # created_at as datetime.isoformat() writes it (the journal's text), from a day cache
        day, rest = divmod(now_us, _US_PER_DAY)
        seconds, micros = divmod(rest, 1_000_000)
        hours, seconds = divmod(seconds, 3600)
        minutes, seconds = divmod(seconds, 60)
        date, clock = self._date(day), f"{hours:02d}:{minutes:02d}:{seconds:02d}"
        created_at = f"{date}T{clock}.{micros:06d}+00:00" if micros else f"{date}T{clock}+00:00"
        request_id = f"chatcmpl-{_uuid7_int(rng, now_us):032x}"
        ab_test_id = self.catalog.ab_test_id if session.ab else None
        ab_variant = model.key if session.ab else None
        base: dict[str, Any] = {
            "project_id": session.project_id,
            "session_id": session.id,
            "created_at": created_at,
            "request_id": request_id,
            "model_id": session.model_id,
            "ab_test_id": ab_test_id,
            "ab_variant": ab_variant,
            "user_id": session.user_id,
            "labels": session.labels,
            "messages": messages,
            "params": params,
            "source": "LIVE",
        }
        # The messages as JSON from each message's own JSON (made once per message).
        question_json = orjson.dumps({"role": "user", "content": question}).decode()
        messages_json = f"[{','.join([session.system_json, *session.history_json, question_json])}]"
        params_json = orjson.dumps(params).decode()
        if kind == "sqlite":
            labels_row: Any = session.labels_json
            messages_row: Any = messages_json
            params_row: Any = params_json
            # naive UTC "YYYY-MM-DD HH:MM:SS.ffffff" (store.bulk_insert._sqlite_datetime)
            created_row: Any = f"{date} {clock}.{micros:06d}"
        else:
            labels_row, messages_row, params_row = session.labels, messages, params
            created_row = _from_us(now_us)
        fixed_bytes = len(messages_json) + len(params_json) + len(session.labels_json)
        ids: list[str] = []
        for index, answer in enumerate(completions):
            value = _uuid7_int(rng, now_us)
            completion_id = _canonical(value)
            record: InteractionRecord = {
                "completion_id": completion_id,
                **base,  # type: ignore[typeddict-item]
                "choice_index": index,
                "replica": replica,
                "completion": answer,
                "finish_reason": finishes[index],
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens[index],
                "ttft_ms": ttft_ms,
                "latency_ms": latency,
                "status": status,
                "error": error,
            }
            if index:
                record["labels"] = dict(session.labels)  # each record its own, as capture does
            if keep_records:
                chunk.records.append(record)
            ids.append(completion_id)
            if kind is not None:
                row_id = _uuid_for(kind, value)
                chunk.interactions.append(
                    (
                        row_id, request_id, index, session.project_id, session.model_id,
                        ab_test_id, ab_variant, replica, session.id_row, session.user_id,
                        labels_row if kind == "sqlite" else record["labels"], messages_row,
                        params_row, answer, None, finishes[index], prompt_tokens,
                        completion_tokens[index], ttft_ms, latency, status, error, "LIVE",
                        created_row,
                    )
                )  # fmt: skip
                project_id = session.project_id
                chunk.labels += [(row_id, project_id, k, v) for k, v in session.labels.items()]
            stats.content_chars += prompt_chars + len(answer)
            stats.text_bytes += fixed_bytes + len(answer) + (len(error) if error else 0)
        made = len(completions)
        stats.interactions += made
        stats.labels += len(session.labels) * made
        stats.statuses[status] += made
        stats.models[model.key] += made
        stats.earlier_turns[len(session.history) // 2] += made

        done_us = now_us + int(latency * 1000)
        if status == "ok":
            self._feedback(session, ids, finishes, done_us, chunk)
            if session.turns_left > 1:  # a next turn will send this one along
                reply = {"role": "assistant", "content": completions[0]}
                session.history = [*session.history, {"role": "user", "content": question}, reply]
                session.history_json += [question_json, orjson.dumps(reply).decode()]
                session.history_chars += len(question) + len(completions[0])
            session.retry = None
        else:
            session.retry = question  # asked again in the next turn
        session.turns_left -= 1
        if session.turns_left > 0:  # the user reads and types: median 45 s, 90% in 10 s-3 min
            think = int(45e6 * math.exp(0.9 * _NORMAL[int(_QUANTILES * random_())]))
            self._sequence += 1
            heapq.heappush(self._due, (done_us + think, self._sequence, session))
        return made

    def _failure(self, rng: random.Random, model: ModelSpec, now_us: int) -> _Failure:
        """What the gateway logs when the upstream fails (its own error texts)."""
        key = model.key
        incident = key == INCIDENT_MODEL and self.incident[0] <= now_us < self.incident[1]
        roll = 0.0 if incident else rng.random()
        if roll < 0.4:
            message = rng.choice(
                ("Service Unavailable", "The server is overloaded, please retry later")
            )
            latency = rng.uniform(3, 400)
            return _Failure(f"the upstream of model {key} is unavailable (503): {message}", latency)
        if roll < 0.6:
            return _Failure(
                f"the upstream of model {key} timed out (504): upstream request timeout",
                rng.uniform(59_000, 61_000),
            )
        if roll < 0.75:
            limit = 32768 if "coder" in key else 8192
            return _Failure(
                f"the upstream of model {key} rejected the request: This model's maximum "
                f"context length is {limit} tokens. However, you requested "
                f"{limit + rng.randrange(1, 4000)} tokens. Please reduce the length of the "
                "messages or completion.",
                rng.uniform(5, 60),
            )
        if roll < 0.85:
            host, port = rng.choice(model.replicas).split("//")[1].split("/")[0].split(":")
            return _Failure(
                f"cannot connect to {host}:{port}: [Errno 111] Connect call failed "
                f"('{host}', {port})",
                rng.uniform(0.5, 5),
                no_replica=True,
            )
        if roll < 0.93:
            return _Failure(
                f"the upstream of model {key} answered 500: Internal Server Error",
                rng.uniform(20, 900),
            )
        # The stream broke off: what came so far is kept.
        partial = completion_text(rng, self.texts, "support")
        partial = partial[: int(len(partial) * rng.uniform(0.1, 0.8))].rsplit(" ", 1)[0]
        ttft = model.ttft_ms * rng.lognormvariate(0, 0.35)
        latency = ttft + len(partial) / model.chars_per_token * model.ms_per_token
        return _Failure("the upstream closed the connection", latency, partial, ttft)

    def _feedback(
        self,
        session: _Session,
        ids: list[str],
        finishes: list[str | None],
        done_us: int,
        chunk: Chunk,
    ) -> None:
        """Metric values on ~31% of successful interactions (55% quality only, 30% thumbs
        only, 15% both); a comparison for half of the requests with two choices."""
        rng, model = self.rng, session.model
        project = session.project.key
        metrics = self.catalog.metrics
        for completion_id, finish in zip(ids, finishes, strict=True):
            roll = rng.random()
            if roll >= 0.31:
                continue
            score = rng.gauss(model.quality, 0.17) - (0.15 if finish == "length" else 0.0)
            score = min(1.0, max(0.0, score))
            if roll < 0.31 * 0.70:
                at = min(self.end_us - 1, done_us + int(rng.uniform(60, 6 * 3600) * 1e6))
                chunk.metric_values.append(
                    {
                        "id": uuid7_at(rng, at),
                        "completion_id": completion_id,
                        "metric_id": metrics[project, "quality"],
                        "value": round(score, 2),
                        "details": None,
                        "reason": None,
                        "user_id": "grader",
                        "created_at": _from_us(at),
                    }
                )
            if roll >= 0.31 * 0.55:
                at = min(self.end_us - 1, done_us + int(rng.uniform(3, 300) * 1e6))
                up = rng.random() < 0.25 + 0.7 * score
                reason = None
                if not up and rng.random() < 0.5:
                    reason = rng.choice(_THUMBS_DOWN_REASONS)
                chunk.metric_values.append(
                    {
                        "id": uuid7_at(rng, at),
                        "completion_id": completion_id,
                        "metric_id": metrics[project, "thumbs"],
                        "value": 1.0 if up else 0.0,
                        "details": None,
                        "reason": reason,
                        "user_id": session.user_id,
                        "created_at": _from_us(at),
                    }
                )
        if len(ids) > 1 and rng.random() < 0.5:
            at = min(self.end_us - 1, done_us + int(rng.uniform(10, 600) * 1e6))
            preferred, other = (ids[0], ids[1]) if rng.random() < 0.5 else (ids[1], ids[0])
            chunk.comparisons.append(
                {
                    "id": uuid7_at(rng, at),
                    "project_id": self.catalog.projects[project],
                    "metric_id": metrics[project, "quality"],
                    "preferred_completion_id": preferred,
                    "other_completion_id": other,
                    "tie": None if rng.random() < 0.9 else rng.choice(("good", "bad")),
                    "user_id": session.user_id,
                    "created_at": _from_us(at),
                }
            )

    def chunks(self) -> Iterator[Chunk]:
        """All N interactions in time order, about CHUNK at a time (a new list each)."""
        rng, n, due = self.rng, self.n, self._due
        clock = Clock(self.start_us, self.end_us)
        chunk = Chunk()
        made = in_chunk = 0
        while made < n:
            now_us = clock.at((made + rng.random()) / n)
            if due and due[0][0] <= now_us:
                session = heapq.heappop(due)[2]
            else:
                session = self.new_session(now_us)
            choices = 2 if rng.random() < 0.015 and made + 1 < n else 1
            count = self.request(now_us, session, choices, chunk)
            made += count
            in_chunk += count
            if in_chunk >= self.chunk or made >= n:
                self.stats.metric_values += len(chunk.metric_values)
                self.stats.comparisons += len(chunk.comparisons)
                yield chunk
                chunk = Chunk()
                in_chunk = 0


def realistic_interaction(
    rng: random.Random,
    *,
    created_at: datetime | None = None,
    earlier_turns: int | None = None,
    catalog: Catalog | None = None,
    texts: Texts | None = None,
) -> InteractionRecord:
    """One interaction record as the gateway journals it: a new session with EARLIER_TURNS
    (default 0-3) made-up earlier turns; ids of `default_catalog()` unless CATALOG is given;
    texts of seed 0 unless TEXTS is given (`texts_for(seed)`)."""
    moment = _window(created_at)
    generator = Generator(
        1, end=moment + timedelta(microseconds=1), catalog=catalog, rng=rng,
        texts=texts or texts_for(0),
    )  # fmt: skip
    now_us = _to_us(moment)
    session = generator.new_session(now_us)
    domain = session.project.domain
    for _ in range(rng.randrange(4) if earlier_turns is None else earlier_turns):
        question = user_text(rng, generator.texts, domain)
        answer = completion_text(rng, generator.texts, domain)
        pair = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        session.history += pair
        session.history_json += [orjson.dumps(message).decode() for message in pair]
        session.history_chars += len(question) + len(answer)
    session.turns_left = 1
    chunk = Chunk()
    generator.request(now_us, session, 1, chunk)
    return chunk.records[0]


# -- writing ------------------------------------------------------------------------------------


def _sqlite_load_settings(dbapi_connection: Any, _record: Any) -> None:
    """While the file is made, no journal and no syncing (a failed run is simply rerun), and
    a 256 MB page cache (the session and label indexes take random writes); the file is put
    back in WAL mode at the end, as the gateway uses it."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA cache_size=-262144")
    cursor.execute("PRAGMA journal_mode=OFF")
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.close()


def check_rows(chunk: Chunk, kind: str, sample: int | None = None) -> None:
    """Raise AssertionError unless the chunk's rows (its first SAMPLE records; all by default)
    are exactly what the gateway's own path makes of its records (store.interactions.
    prepare_rows): the generator builds rows directly, for speed."""
    records = chunk.records if sample is None else chunk.records[:sample]
    if not records:
        raise AssertionError("the chunk keeps no records to check its rows against")
    prepared = prepare_rows(records, kind)
    for got, want in zip(chunk.interactions, prepared.interactions, strict=False):
        if got != want:
            diff = [
                f"{name}: {a!r} != {b!r}"
                for name, a, b in zip(INTERACTION_COLUMNS, got, want, strict=True)
                if a != b
            ]
            raise AssertionError(f"interaction row differs from prepare_rows: {diff}")
    labels = [row for rows in prepared.labels for row in rows]
    if chunk.labels[: len(labels)] != labels:
        raise AssertionError("interaction_label rows differ from prepare_rows")


def _ahead(chunks: Iterator[Chunk]) -> Iterator[Chunk]:
    """CHUNKS made in a thread, one ahead of the caller: generating the next chunk (Python)
    overlaps with the database's work on this one (SQLite's B-trees run without the GIL;
    PostgreSQL works in its own process). At most three chunks live at a time."""
    queue: Queue[Chunk | BaseException | None] = Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        try:
            for chunk in chunks:
                while not stop.is_set():
                    try:
                        queue.put(chunk, timeout=0.2)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            queue.put(None)
        except BaseException as exc:  # handed to the consumer, raised there
            queue.put(exc)

    thread = threading.Thread(target=produce, name="realistic-generator", daemon=True)
    thread.start()
    try:
        while True:
            item = queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def _write(engine: Engine, generator: Generator, *, progress: bool, overlap: bool) -> float:
    """Every chunk in its own transaction through the gateway's bulk path (multi-row INSERTs
    on SQLite, binary COPY on PostgreSQL); the first chunk's rows are checked in full against
    prepare_rows, later ones on a sample. Returns the seconds taken."""
    kind = generator.kind
    assert kind is not None and kind == writer_kind(engine), (kind, writer_kind(engine))
    started = time.perf_counter()
    written = 0
    chunks = generator.chunks()
    switch = sys.getswitchinterval()
    collecting = gc.isenabled()
    gc.disable()  # millions of new tuples and dicts, no cycles: collections cost 20% here
    if overlap:
        chunks = _ahead(chunks)
        sys.setswitchinterval(0.0005)  # the writer gets the GIL back soon after each step
    try:
        for chunk in chunks:
            check_rows(chunk, kind)
            with engine.begin() as connection:
                insert_row_batch(connection, RowBatch([], chunk.interactions, chunk.labels))
                insert_ignoring_conflicts(connection, METRIC_VALUE_TABLE, chunk.metric_values)
                insert_ignoring_conflicts(connection, COMPARISON_TABLE, chunk.comparisons)
            written += len(chunk.interactions)
            if progress:
                rate = written / (time.perf_counter() - started)
                print(
                    f"  {written:>11,} interactions  {rate:>7,.0f}/s", file=sys.stderr, flush=True
                )
    finally:
        sys.setswitchinterval(switch)
        if collecting:
            gc.enable()
    return time.perf_counter() - started


def _facts(generator: Generator, seconds: float, seed: int) -> dict[str, Any]:
    stats = generator.stats
    n = max(1, stats.interactions)
    return {
        "seed": seed,
        "start": _from_us(generator.start_us).isoformat(),
        "end": _from_us(generator.end_us).isoformat(),
        "interactions": stats.interactions,
        "interaction_labels": stats.labels,
        "metric_values": stats.metric_values,
        "comparisons": stats.comparisons,
        "sessions": stats.sessions,
        "load_seconds": round(seconds, 2),
        "rows_per_s": round(stats.interactions / seconds) if seconds else None,
        "text_bytes_per_interaction": round(stats.text_bytes / n),
        "content_chars_per_interaction": round(stats.content_chars / n),
        "statuses": {k: round(v / n, 4) for k, v in stats.statuses.most_common()},
        "model_shares": {k: round(v / n, 4) for k, v in stats.models.most_common()},
        "earlier_turns": {k: round(v / n, 4) for k, v in sorted(stats.earlier_turns.items())},
        "catalog": {
            "projects": generator.catalog.projects,
            "models": generator.catalog.models,
            "metrics": {f"{p}/{m}": i for (p, m), i in generator.catalog.metrics.items()},
            "ab_test_id": generator.catalog.ab_test_id,
        },
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def _window(end: datetime | None) -> datetime:
    end = end or datetime.now(UTC).replace(microsecond=0)
    if end.tzinfo is None:
        raise ValueError("end must be timezone-aware")
    return end.astimezone(UTC)


def create_sqlite_store(
    path: str | Path,
    n: int,
    *,
    seed: int = 1,
    end: datetime | None = None,
    chunk: int = DEFAULT_CHUNK,
    overlap: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """Migrate a new SQLite file at PATH (it must not exist) and fill it with N interactions
    of SEED over the 30 days before END (default: now). OVERLAP: generate the next chunk in a
    thread while this one is written (faster; up to ~1.5 cores instead of one). Returns facts
    about what was written and how fast."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists already")
    end = _window(end)
    url = f"sqlite:///{path}"
    started = time.perf_counter()
    migrations.upgrade(url)
    engine = create_store_engine(url)
    event.listen(engine, "connect", _sqlite_load_settings)
    try:
        catalog = create_catalog(engine, end - timedelta(days=DAYS))
        generator = Generator(n, seed=seed, end=end, catalog=catalog, chunk=chunk, kind="sqlite")
        seconds = _write(engine, generator, progress=progress, overlap=overlap)
    finally:
        engine.dispose()
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
    facts = _facts(generator, seconds, seed)
    facts["database"] = url
    facts["wall_seconds"] = round(time.perf_counter() - started, 2)
    facts["file_mb"] = round(path.stat().st_size / 1e6, 1)
    return facts


def _admin_conninfo(url: str) -> tuple[str, str]:
    parsed = normalize_url(url)
    parts = [f"host={parsed.host or '127.0.0.1'}", f"port={parsed.port or 5432}"]
    parts.append(f"user={parsed.username or 'postgres'}")
    if parsed.password:
        parts.append(f"password={parsed.password}")
    if not parsed.database:
        raise ValueError(f"{url}: the URL must name a database")
    return " ".join(parts), parsed.database


def ensure_postgres_database(url: str, *, replace: bool = False) -> bool:
    """Create the database of URL when missing (dropped first with REPLACE); True if created."""
    conninfo, name = _admin_conninfo(url)
    with psycopg.connect(f"{conninfo} dbname=postgres", autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and replace:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)'.encode())
            exists = None
        if exists:
            return False
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
        return True


def drop_postgres_database(url: str) -> None:
    conninfo, name = _admin_conninfo(url)
    with psycopg.connect(f"{conninfo} dbname=postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def create_postgres_store(
    url: str,
    n: int,
    *,
    seed: int = 1,
    end: datetime | None = None,
    chunk: int = DEFAULT_CHUNK,
    overlap: bool = True,
    progress: bool = False,
    replace: bool = False,
) -> dict[str, Any]:
    """Create the database of URL if missing (REPLACE: drop it first), migrate it and fill it
    with N interactions, as create_sqlite_store; refuses a database that holds data already.
    Ends with VACUUM ANALYZE (what autovacuum would do soon after). Returns facts."""
    url = normalize_url(url).render_as_string(hide_password=False)
    end = _window(end)
    started = time.perf_counter()
    ensure_postgres_database(url, replace=replace)
    migrations.upgrade(url)
    engine = create_store_engine(url, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as connection:
            for table in ("interaction", "project", "model"):
                if connection.execute(text(f"SELECT EXISTS (SELECT 1 FROM {table})")).scalar():
                    name = make_url(url).database
                    raise RuntimeError(f"database {name} holds data already (table {table})")
        catalog = create_catalog(engine, end - timedelta(days=DAYS))
        generator = Generator(n, seed=seed, end=end, catalog=catalog, chunk=chunk, kind="psycopg")
        seconds = _write(engine, generator, progress=progress, overlap=overlap)
        vacuum_started = time.perf_counter()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")
            size = connection.execute(text("SELECT pg_database_size(current_database())")).scalar()
        vacuum = time.perf_counter() - vacuum_started
    finally:
        engine.dispose()
    facts = _facts(generator, seconds, seed)
    facts["database"] = make_url(url).render_as_string(hide_password=True)
    facts["vacuum_analyze_seconds"] = round(vacuum, 2)
    facts["wall_seconds"] = round(time.perf_counter() - started, 2)
    facts["database_mb"] = round(int(size or 0) / 1e6, 1)
    return facts


# -- command line -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="interactions to write")
    parser.add_argument("--sqlite", type=Path, help="a new SQLite file to create")
    parser.add_argument("--postgres", help="a PostgreSQL URL; its database is made if missing")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--end",
        type=datetime.fromisoformat,
        help="end of the 30-day window, ISO 8601 with offset (default: now); fix it to get "
        "the same store twice",
    )
    parser.add_argument("--chunk", type=int, default=DEFAULT_CHUNK, help="rows per transaction")
    parser.add_argument(
        "--replace", action="store_true", help="overwrite an existing file / database"
    )
    parser.add_argument(
        "--one-core",
        action="store_true",
        help="generate and write in turn in one thread (default: the next chunk is generated "
        "in a thread while this one is written)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    if not args.sqlite and not args.postgres:
        parser.error("give --sqlite PATH and/or --postgres URL")
    results = []
    common = {
        "seed": args.seed,
        "end": _window(args.end),  # one window for both stores
        "chunk": args.chunk,
        "overlap": not args.one_core,
        "progress": not args.quiet,
    }
    if args.sqlite:
        if args.replace:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{args.sqlite}{suffix}").unlink(missing_ok=True)
        facts = create_sqlite_store(args.sqlite, args.rows, **common)
        print(
            f"sqlite    {facts['interactions']:,} interactions in {facts['load_seconds']:.1f} s "
            f"({facts['rows_per_s']:,}/s; {facts['wall_seconds']:.1f} s with migrations), "
            f"{facts['file_mb']:,.1f} MB, {facts['text_bytes_per_interaction']:,} text bytes "
            f"per interaction, peak RSS {facts['peak_rss_mb']} MB: {args.sqlite}"
        )
        results.append(facts)
    if args.postgres:
        facts = create_postgres_store(args.postgres, args.rows, replace=args.replace, **common)
        print(
            f"postgres  {facts['interactions']:,} interactions in {facts['load_seconds']:.1f} s "
            f"({facts['rows_per_s']:,}/s; {facts['wall_seconds']:.1f} s with migrations and "
            f"VACUUM ANALYZE {facts['vacuum_analyze_seconds']:.1f} s), database "
            f"{facts['database_mb']:,.1f} MB, {facts['text_bytes_per_interaction']:,} text "
            f"bytes per interaction, peak RSS {facts['peak_rss_mb']} MB: {facts['database']}"
        )
        results.append(facts)
    for facts in results:
        print(orjson.dumps(facts, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())
    return results


if __name__ == "__main__":
    main()
