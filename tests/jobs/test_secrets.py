"""Secrets: which env names and values `swiftfleet render` masks, which token values and nested args keys a job file
may not hold, and the plain arguments that only look like secrets."""

from pathlib import Path
from typing import Any

import pytest

from swiftfleet.errors import SwiftfleetError
from swiftfleet.jobs import plan, render, spec

HF = "hf_" + "a1B2" * 9
OPENAI = "sk-proj-" + "Ab3_" * 6
GITHUB = "ghp_" + "x" * 36
AWS = "AKIAIOSFODNN7EXAMPLE"


@pytest.mark.parametrize(
    "name",
    [
        "OPENAI_KEY",
        "AZURE_OPENAI_KEY",
        "SSH_PRIVATE_KEY",
        "MY_APIKEY",
        "ENCRYPTION_KEY",
        "KEY",
        "AUTH_HEADER",
        "HF_TOKEN",
        "DB_PASSWORD",
        "session_cookie",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "api_key",
        "Authorization",
    ],
)
def test_secret_names(name: str) -> None:
    assert spec.is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    ["TOKENIZERS_PARALLELISM", "NCCL_DEBUG", "max_tokens", "max_new_tokens", "pad_token", "model_author"],
)
def test_counts_and_tokenizer_settings_are_not_secret_names(name: str) -> None:
    assert not spec.is_secret_name(name)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (HF, "a Hugging Face token"),
        (f"x_{HF}", "a Hugging Face token"),  # after an underscore, which `\b` missed
        (f"Bearer {OPENAI}", "an OpenAI API key"),
        (GITHUB, "a GitHub token"),
        (f"ghs_{'Z' * 36}", "a GitHub token"),
        (f"id={AWS}", "an AWS access key id"),
        ("hf_short", None),
        (f"task-{'a' * 30}", None),  # `sk-` inside a word
        (f"github_{'x' * 36}", None),
        ("Qwen/Qwen2.5-7B-Instruct", None),
    ],
)
def test_token_values(value: str, kind: str | None) -> None:
    assert spec.token_kind(value) == kind


def test_render_masks_secret_names_and_token_values(tmp_path: Path) -> None:
    """Nothing secret reaches the rendered files, whatever env name holds it; plain settings stay readable."""
    secrets = {
        "OPENAI_KEY": "sk-short-1",
        "AZURE_OPENAI_KEY": "az-2",
        "SSH_PRIVATE_KEY": "ssh-3",
        "MY_APIKEY": "my-4",
        "ENCRYPTION_KEY": "enc-5",
        "KEY": "key-6",
        "AUTH_HEADER": "Bearer abc-7",
        "HF_AUTH": HF,  # the name says nothing, the value does
        "UPLOAD_TO": f"https://{GITHUB}@github.com/org/repo",
    }
    plain = {"NCCL_DEBUG": "WARN", "TOKENIZERS_PARALLELISM": "false"}
    job = spec.parse_job(
        {
            "job": {
                "name": "t",
                "kind": "swift sft",
                "model": "Qwen/Qwen2.5-7B",
                "datasets": ["org/data"],
                "env": {**secrets, **plain},
            }
        },
        "test",
    )
    job_plan = plan.build(job, plan.hypothetical_nodes(2), "test")
    written = render.render_all(job_plan, tmp_path / "out")
    text = "\n".join(p.read_text() for p in written)
    for name, value in secrets.items():
        assert value not in text, name
        assert f'{name}="{render.SECRET_MASK}"' in text or f"{name}={render.SECRET_MASK}" in text, name
    for name, value in plain.items():
        assert value in text, name
    assert job_plan.env["HF_AUTH"] == HF  # masked in the dry run only: the nodes get the value


def _eval(**changes: Any) -> dict[str, Any]:
    return {"job": {"name": "ev", "kind": "swift eval", "model": "Qwen/Qwen2.5-7B-Instruct", **changes}}


@pytest.mark.parametrize(
    "args",
    [
        {"eval_generation_config": {"max_tokens": 512, "temperature": 0}},
        {"extra_eval_args": {"judge_model_args": {"generation_config": {"max_new_tokens": 64}}}},
        {"extra_eval_args": '{"judge_model_args": {"api_url": "http://10.0.0.5:8000/v1"}}'},
        {"eval_url": "http://10.0.0.5:8000/v1"},
    ],
    ids=["max-tokens", "nested-max-new-tokens", "json-url", "eval-url"],
)
def test_plain_nested_args_pass(args: dict[str, Any]) -> None:
    spec.parse_job(_eval(args=args), "test")


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (
            {"extra_eval_args": {"judge_model_args": {"api_key": "sk-live-abcdef123456"}}},
            "judge_model_args.api_key",
        ),
        ({"extra_eval_args": [{"Authorization": "Bearer x"}]}, "extra_eval_args.0.Authorization"),
        ({"extra_eval_args": '{"judge_model_args": {"password": "hunter2"}}'}, "judge_model_args.password"),
    ],
    ids=["mapping", "list", "json-string"],
)
def test_secret_named_nested_args_are_refused(args: dict[str, Any], where: str) -> None:
    with pytest.raises(SwiftfleetError, match=f"args\\.(extra_eval_args\\.)?{where}: a secret in args lands"):
        spec.parse_job(_eval(args=args), "test")


def test_credentials_in_a_nested_url_are_refused() -> None:
    args = {"extra_eval_args": {"judge_model_args": {"api_url": "https://u:p@judge.example/v1"}}}
    with pytest.raises(SwiftfleetError, match=r"api_url: credentials do not go in URLs"):
        spec.parse_job(_eval(args=args), "test")


@pytest.mark.parametrize(
    ("limit", "ok"), [("365d", True), ("8760h", True), ("365d 1s", False), ("9000h", False)]
)
def test_time_limit_at_most_a_year(limit: str, ok: bool) -> None:
    job = {"job": {"name": "t", "kind": "swift sft", "model": "Qwen/Qwen2.5-7B", "datasets": ["org/data"]}}
    job["job"]["time_limit"] = limit
    if ok:
        assert spec.parse_job(job, "test").time_limit == limit
    else:
        with pytest.raises(SwiftfleetError, match=r"time_limit: .* is over 365 days"):
            spec.parse_job(job, "test")
