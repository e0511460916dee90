"""What `interlog demo` sends: projects, models, labels, prompts, images and how scores look.

Everything is drawn from a seeded random generator, so two demo runs send the same traffic.
"""

from __future__ import annotations

import base64
import random
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

DEMO_MODELS = {
    # model key: (demo server name, multimodal)
    "demo-small": ("small", False),
    "demo-large": ("large", True),
    "demo-coder": ("coder", False),
}


@dataclass(frozen=True)
class MetricSpec:
    key: str
    kind: str
    scoring: str = "higher_is_better"
    description: str = ""


@dataclass(frozen=True)
class ProjectSpec:
    """One demo project: its models, labels, prompts, metrics, and share of the traffic."""

    key: str
    name: str
    share: float
    models: tuple[str, ...]
    default_model: str | None
    labels: dict[str, tuple[str, ...]]
    prompts: tuple[str, ...]
    metrics: tuple[MetricSpec, ...]
    follow_ups: tuple[str, ...] = ()
    image_rate: float = 0.0
    quality_by_model: dict[str, float] = field(default_factory=dict)


PROJECTS = (
    ProjectSpec(
        key="support-bot",
        name="Customer support bot",
        share=0.5,
        models=("demo-small", "demo-large"),
        default_model=None,  # its A/B test routes the traffic
        labels={
            "team": ("billing", "shipping", "accounts", "returns"),
            "channel": ("web", "email", "app"),
            "lang": ("en", "fr", "de"),
            "tier": ("free", "pro", "enterprise"),
        },
        prompts=(
            "How do I reset my password",
            "Where is my order number {n}",
            "Can I change the shipping address of order {n}",
            "Why was I charged twice this month",
            "How do I return a damaged item",
            "Please cancel my subscription",
            "The app crashes when I open my invoices",
            "Do you ship to Canada and how long does it take",
        ),
        follow_ups=(
            "That did not work, what else can I try",
            "Thanks, and how long will the refund take",
            "Can I talk to a person",
        ),
        metrics=(
            MetricSpec("quality", "scalar", description="Reviewer score from 0 to 1"),
            MetricSpec("thumbs_up", "bool", description="The customer clicked thumbs up"),
            MetricSpec("resolved", "bool", description="The ticket was closed without escalation"),
        ),
        image_rate=0.04,
        quality_by_model={"demo-small": 0.62, "demo-large": 0.71},
    ),
    ProjectSpec(
        key="code-assistant",
        name="Code assistant",
        share=0.3,
        models=("demo-coder", "demo-small"),
        default_model="demo-coder",
        labels={
            "language": ("python", "typescript", "go", "rust"),
            "ide": ("vscode", "jetbrains", "vim"),
            "task": ("explain", "fix", "generate", "review"),
        },
        prompts=(
            "Write a function that parses ISO dates",
            "Why does this loop never stop",
            "Explain what a context manager does",
            "Refactor this class into smaller functions",
            "Add type hints to this module",
            "Write a unit test for the cache",
        ),
        follow_ups=("Now make it async", "Add error handling please"),
        metrics=(
            MetricSpec("compiles", "bool", description="The suggested code compiled"),
            MetricSpec("quality", "scalar", description="Reviewer score from 0 to 1"),
        ),
        quality_by_model={"demo-coder": 0.74, "demo-small": 0.58},
    ),
    ProjectSpec(
        key="search",
        name="Search answers",
        share=0.2,
        models=("demo-small", "demo-large"),
        default_model="demo-small",
        labels={"source": ("docs", "web", "kb"), "locale": ("en-US", "en-GB", "fr-FR")},
        prompts=(
            "Summarise the refund policy",
            "What are the opening hours in Paris",
            "Compare the pro and enterprise plans",
            "Find the API rate limits",
        ),
        metrics=(
            MetricSpec("relevance", "scalar", description="Relevance judged by an LLM, 0 to 1"),
            MetricSpec("latency_score", "scalar", "lower_is_better", "Seconds the user waited"),
        ),
        quality_by_model={"demo-small": 0.66, "demo-large": 0.69},
    ),
)

ERROR_RATE = 0.02
STREAM_RATE = 0.3


def tiny_png(rgb: tuple[int, int, int], size: int = 8) -> bytes:
    """A small solid-colour PNG, built by hand (no imaging library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * size
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * size))
        + chunk(b"IEND", b"")
    )


def image_part(rng: random.Random) -> dict[str, Any]:
    """An OpenAI-style image part carrying a data URI of a small PNG."""
    colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
    data = base64.b64encode(tiny_png(colour)).decode()
    return {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}


def pick_project(rng: random.Random) -> ProjectSpec:
    return rng.choices(PROJECTS, weights=[p.share for p in PROJECTS])[0]


def session_labels(rng: random.Random, project: ProjectSpec) -> dict[str, str]:
    """Labels for one session (every turn of a session carries the same labels)."""
    return {key: rng.choice(values) for key, values in project.labels.items()}


def user_text(rng: random.Random, project: ProjectSpec, turn: int) -> str:
    """The user's message of one turn."""
    if turn > 0 and project.follow_ups:
        text = rng.choice(project.follow_ups)
    else:
        text = rng.choice(project.prompts).format(n=rng.randrange(10_000, 99_999))
    return text + "?"


def score(rng: random.Random, mean: float) -> float:
    """A reviewer's score around a model's mean quality, in [0, 1]."""
    return round(min(1.0, max(0.0, rng.gauss(mean, 0.15))), 3)
