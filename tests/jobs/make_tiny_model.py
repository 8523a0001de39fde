"""A tiny chat model and datasets made on the spot, so that real ms-swift runs need no download.

Needs torch, transformers and tokenizers (an ms-swift environment):
    python tests/jobs/make_tiny_model.py build/tiny
writes build/tiny/model (a random Qwen2ForCausalLM, hidden 64, 2 layers, byte-level BPE tokenizer with the
<|im_start|>/<|im_end|> chat template; about 0.5 MB), build/tiny/chat.jsonl and build/tiny/eval.jsonl
(messages format). Deterministic: the same seed gives the same files.
"""

import json
import random
import sys
from pathlib import Path

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "node",
    "rank",
    "train",
    "model",
    "swift",
    "cluster",
    "gpu",
    "loss",
    "step",
    "token",
    "chat",
    "hello",
]


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9)))


def chat_rows(n: int, seed: int) -> list[dict[str, list[dict[str, str]]]]:
    """Question/answer pairs with a learnable rule (the answer repeats the question reversed)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        q = _sentence(rng)
        rows.append(
            {
                "messages": [
                    {"role": "system", "content": "You are a tiny test model."},
                    {"role": "user", "content": q},
                    {"role": "assistant", "content": " ".join(reversed(q.split()))},
                ]
            }
        )
    return rows


def make_tokenizer(out: Path, texts: list[str]) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out)


def make_model(out: Path, vocab_size: int, seed: int) -> None:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        torch_dtype="float32",
    )
    Qwen2ForCausalLM(config).save_pretrained(out, safe_serialization=True)


def make_all(root: Path, seed: int = 0) -> Path:
    """Write model/, chat.jsonl (200 rows) and eval.jsonl (20 rows) under `root`; return `root`."""
    root.mkdir(parents=True, exist_ok=True)
    train, evals = chat_rows(200, seed), chat_rows(20, seed + 1)
    for name, rows in (("chat.jsonl", train), ("eval.jsonl", evals)):
        (root / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    texts = [m["content"] for r in train for m in r["messages"]] + SPECIAL
    make_tokenizer(root / "model", texts)
    from transformers import AutoTokenizer

    make_model(root / "model", len(AutoTokenizer.from_pretrained(root / "model")), seed)
    return root


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUT_DIR")
    print(make_all(Path(sys.argv[1])))
