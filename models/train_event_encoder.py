#!/usr/bin/env python3
"""Train FireSight's event encoder (v1) and export it to ONNX.

An autoencoder over standardised detection + weather features; the 16-wide bottleneck is the
event embedding. The exported graph contains the normalisation (NaN imputation to the training
mean, then z-scoring) and the encoder half, so the service passes raw features.

Reads only the sample bundled in ../data/sample, so anyone with the repository can rerun it:

    python3 -m pip install -r models/requirements-train.txt
    python3 models/train_event_encoder.py

Writes models/event_encoder.onnx, models/manifest.json, models/fixtures/event_encoder_golden.json
and prints the metrics recorded in models/MODEL_CARD_event_encoder.md.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # fixed summation order: same weights each run
os.environ.setdefault("OMP_NUM_THREADS", "1")

import csv
import datetime as dt
import hashlib
import json
import math
import pathlib
import re

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

ROOT = pathlib.Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
MODELS = ROOT / "models"
NAME, VERSION = "event-encoder", "1"
SEED = 7
MAX_STATION_KM = 150.0
HIDDEN, EMBED_DIM = 48, 16
EPOCHS, BATCH, LEARNING_RATE = 40, 256, 2e-3
HELD_OUT_FROM = dt.date(2019, 9, 21)  # detections on or after this UTC day are never trained on
FEATURES = [
    "loc_x", "loc_y", "loc_z", "brightness_k", "brightness_background_k", "log1p_frp_mw", "scan_km",
    "track_km", "confidence_pct", "daytime", "tod_sin", "tod_cos", "doy_sin", "doy_cos", "is_viirs",
    "max_temp_c", "min_temp_c", "log1p_rain_mm", "rh_3pm_pct", "wind_3pm_kmh", "max_gust_kmh",
    "weather_present",
]
MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september",
          "october", "november", "december"]


def number(text):
    text = text.strip()
    return float(text) if text else None


def load_stations():
    stations = {}
    with open(SAMPLE / "australia_bom_weather_stations.csv", encoding="utf-8-sig", newline="") as f:
        for row in csv.DictReader(f):
            stations[int(row["STN_NUM"])] = (row["NAME"].strip(), float(row["LATITUDE"]), float(row["LONGITUDE"]))
    return stations


def load_weather(stations):
    """(station, local day) -> observation; wrong numbers beside a known name resolve by the name."""
    by_name = {}
    for sid, (name, _, _) in stations.items():
        by_name.setdefault(" ".join(name.upper().split()), []).append(sid)
    weather = {}
    with open(SAMPLE / "australia_bom_daily_weather_2019-05_2020-06.csv", encoding="utf-8-sig", newline="") as f:
        for row in csv.DictReader(f):
            label = row["Station"]
            match = re.search(r"\{station\s*(\d+)", label)
            if not match or not row["Date"].strip():
                continue
            sid, name = int(match.group(1)), " ".join(label[: label.index("{")].split()).upper()
            if sid not in stations:
                candidates = by_name.get(name, [])
                if len(candidates) != 1:
                    continue
                sid = candidates[0]
            month = next(i + 1 for i, m in enumerate(MONTHS) if m.startswith(row["Month"].strip().lower()))
            day = dt.date(int(row["Year"]), month, int(row["Date"]))
            weather[(sid, day)] = {
                "max_temp_c": number(row["Max °C"]), "min_temp_c": number(row["Min °C"]),
                "rain_mm": number(row["Rain(mm)"]), "rh_3pm_pct": number(row["RH -% 3:00PM"]),
                "wind_3pm_kmh": number(row["Spd - 3:00PM - km/h"]),
                "max_gust_kmh": number(row["Max wind gust Spd - km/h"]),
            }
    return weather


def haversine(lat1, lon1, lat2, lon2):
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(h)))


def local_solar(at, lon):
    return at + dt.timedelta(seconds=round(lon * 240.0))


def correlate(lat, lon, at, stations, weather, reporting):
    day = local_solar(at, lon).date()
    best = None
    for sid in reporting.get(day, []):
        _, slat, slon = stations[sid]
        if abs(slat - lat) > MAX_STATION_KM / 110.0:
            continue
        d = haversine(lat, lon, slat, slon)
        if d <= MAX_STATION_KM and (best is None or d < best[1]):
            best = (sid, d)
    return weather[(best[0], day)] if best else None


def features(event):
    """Mirror of src/embed/features.rs; the golden fixture keeps the two equal."""
    lat, lon = math.radians(event["latitude"]), math.radians(event["longitude"])
    at = dt.datetime.fromtimestamp(event["detection_time"] / 1000, tz=dt.timezone.utc)
    local = local_solar(at, event["longitude"])
    hour = local.hour + local.minute / 60.0
    tod = 2 * math.pi * hour / 24.0
    doy = 2 * math.pi * (local.timetuple().tm_yday - 1) / 365.25
    w = event["weather"]
    nan = float("nan")

    def wv(key, f=lambda x: x):
        return nan if w is None or w.get(key) is None else f(w[key])

    conf = event["confidence_percent"]
    if conf is None:
        conf = {"low": 20.0, "high": 90.0}.get(event["confidence"], 55.0)
    return [
        math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat),
        event["brightness_k"], event["brightness_background_k"], math.log1p(max(event["frp_mw"], 0.0)),
        event["scan_km"], event["track_km"], conf, 1.0 if event["daytime"] else 0.0,
        math.sin(tod), math.cos(tod), math.sin(doy), math.cos(doy), 1.0 if event["instrument"] == "VIIRS" else 0.0,
        wv("max_temp_c"), wv("min_temp_c"), wv("rain_mm", lambda r: math.log1p(max(r, 0.0))), wv("rh_3pm_pct"),
        wv("wind_3pm_kmh"), wv("max_gust_kmh"), 0.0 if w is None else 1.0,
    ]


def load_events():
    stations = load_stations()
    weather = load_weather(stations)
    reporting = {}
    for sid, day in weather:
        reporting.setdefault(day, []).append(sid)
    events = []
    with open(SAMPLE / "fire_archive_M6_96619.csv", newline="") as f:
        for row in csv.DictReader(f):
            hhmm = int(row["acq_time"])
            at = dt.datetime.strptime(row["acq_date"], "%Y-%m-%d").replace(
                hour=hhmm // 100, minute=hhmm % 100, tzinfo=dt.timezone.utc)
            lat, lon = float(row["latitude"]), float(row["longitude"])
            conf = float(row["confidence"])
            events.append({
                "latitude": lat, "longitude": lon, "detection_time": int(at.timestamp() * 1000),
                "brightness_k": float(row["brightness"]), "brightness_background_k": float(row["bright_t31"]),
                "frp_mw": float(row["frp"]), "scan_km": float(row["scan"]), "track_km": float(row["track"]),
                "confidence_percent": conf,
                "confidence": "low" if conf < 30 else ("nominal" if conf < 80 else "high"),
                "daytime": row["daynight"] == "D", "instrument": "MODIS",
                "weather": correlate(lat, lon, at, stations, weather, reporting),
                "utc_day": at.date(),
            })
    return events


class Autoencoder:
    def __init__(self, rng, width):
        def layer(n_in, n_out):
            return rng.normal(0, math.sqrt(1.0 / n_in), (n_in, n_out)), np.zeros(n_out)
        self.params = [*layer(width, HIDDEN), *layer(HIDDEN, EMBED_DIM), *layer(EMBED_DIM, HIDDEN), *layer(HIDDEN, width)]
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t = 0

    def encode(self, z):
        w1, b1, w2, b2 = self.params[:4]
        return np.tanh(z @ w1 + b1) @ w2 + b2

    def forward(self, z):
        w1, b1, w2, b2, w3, b3, w4, b4 = self.params
        h1 = np.tanh(z @ w1 + b1)
        e = h1 @ w2 + b2
        h2 = np.tanh(e @ w3 + b3)
        return h1, e, h2, h2 @ w4 + b4

    def step(self, z, mask):
        w1, b1, w2, b2, w3, b3, w4, b4 = self.params
        h1, e, h2, out = self.forward(z)
        diff = (out - z) * mask
        d_out = 2 * diff / mask.sum()
        g_w4, g_b4 = h2.T @ d_out, d_out.sum(0)
        d_h2 = (d_out @ w4.T) * (1 - h2 ** 2)
        g_w3, g_b3 = e.T @ d_h2, d_h2.sum(0)
        d_e = d_h2 @ w3.T
        g_w2, g_b2 = h1.T @ d_e, d_e.sum(0)
        d_h1 = (d_e @ w2.T) * (1 - h1 ** 2)
        g_w1, g_b1 = z.T @ d_h1, d_h1.sum(0)
        self.adam([g_w1, g_b1, g_w2, g_b2, g_w3, g_b3, g_w4, g_b4])

    def adam(self, grads, beta1=0.9, beta2=0.999, eps=1e-8):
        self.t += 1
        for i, g in enumerate(grads):
            self.m[i] = beta1 * self.m[i] + (1 - beta1) * g
            self.v[i] = beta2 * self.v[i] + (1 - beta2) * g * g
            m_hat = self.m[i] / (1 - beta1 ** self.t)
            v_hat = self.v[i] / (1 - beta2 ** self.t)
            self.params[i] -= LEARNING_RATE * m_hat / (np.sqrt(v_hat) + eps)


def masked_mse(pred, z, mask):
    return float((((pred - z) * mask) ** 2).sum() / mask.sum())


def standardise(x, mean, std):
    mask = ~np.isnan(x)
    return np.where(mask, (x - mean) / std, 0.0), mask.astype(np.float64)


def export(model, mean, std, path):
    w1, b1, w2, b2 = (p.astype(np.float32) for p in model.params[:4])
    inits = [numpy_helper.from_array(a, name) for a, name in [
        (mean.astype(np.float32), "mean"), (std.astype(np.float32), "std"),
        (w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2")]]
    nodes = [
        helper.make_node("IsNaN", ["features"], ["missing"]),
        helper.make_node("Where", ["missing", "mean", "features"], ["imputed"]),
        helper.make_node("Sub", ["imputed", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "std"], ["z"]),
        helper.make_node("MatMul", ["z", "w1"], ["h_pre"]),
        helper.make_node("Add", ["h_pre", "b1"], ["h_lin"]),
        helper.make_node("Tanh", ["h_lin"], ["h"]),
        helper.make_node("MatMul", ["h", "w2"], ["e_pre"]),
        helper.make_node("Add", ["e_pre", "b2"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes, "firesight_event_encoder",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", len(FEATURES)])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", EMBED_DIM])],
        inits)
    model_proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="firesight-train")
    model_proto.ir_version = 8
    onnx.checker.check_model(model_proto)
    path.write_bytes(model_proto.SerializeToString())


def main():
    events = load_events()
    x = np.array([features(e) for e in events], dtype=np.float64)
    train_rows = np.array([e["utc_day"] < HELD_OUT_FROM for e in events])
    x_train, x_test = x[train_rows], x[~train_rows]
    mean = np.nanmean(x_train, axis=0)
    std = np.nanstd(x_train, axis=0)
    std[std < 1e-6] = 1.0
    z_train, m_train = standardise(x_train, mean, std)
    z_test, m_test = standardise(x_test, mean, std)

    rng = np.random.default_rng(SEED)
    model = Autoencoder(rng, len(FEATURES))
    for epoch in range(EPOCHS):
        order = rng.permutation(len(z_train))
        for start in range(0, len(order), BATCH):
            idx = order[start:start + BATCH]
            model.step(z_train[idx], m_train[idx])
    train_mse = masked_mse(model.forward(z_train)[3], z_train, m_train)
    test_mse = masked_mse(model.forward(z_test)[3], z_test, m_test)
    # Baselines on the same held-out rows: the training mean, and PCA with the same width.
    mean_mse = masked_mse(np.zeros_like(z_test), z_test, m_test)
    _, _, vt = np.linalg.svd(z_train - z_train.mean(0), full_matrices=False)
    basis = vt[:EMBED_DIM].T
    centre = z_train.mean(0)
    pca_mse = masked_mse((z_test - centre) @ basis @ basis.T + centre, z_test, m_test)

    onnx_path = MODELS / "event_encoder.onnx"
    export(model, mean, std, onnx_path)
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_out = session.run(["embedding"], {"features": x_test.astype(np.float32)})[0]
    numpy_out = model.encode(z_test)
    max_diff = float(np.abs(onnx_out - numpy_out).max())
    assert max_diff < 1e-3, f"ONNX export differs from numpy by {max_diff}"

    digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    entry = {
        "name": NAME, "version": VERSION, "kind": "event-encoder", "file": onnx_path.name, "sha256": digest,
        "input": "features", "input_width": len(FEATURES), "output": "embedding", "output_dim": EMBED_DIM,
        "normalisation": "inside the graph: NaN -> training mean, then (x - mean) / std per feature",
    }
    manifest_path = MODELS / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"models": []}
    others = [m for m in manifest["models"] if (m["name"], m["version"]) != (NAME, VERSION)]
    manifest["models"] = [entry] + others
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    write_golden(events, session)

    with_weather = sum(e["weather"] is not None for e in events)
    metrics = {
        "rows": len(events), "train_rows": int(train_rows.sum()), "held_out_rows": int((~train_rows).sum()),
        "rows_with_weather": with_weather, "train_masked_mse": round(train_mse, 4),
        "held_out_masked_mse": round(test_mse, 4), "held_out_pca16_mse": round(pca_mse, 4),
        "held_out_mean_baseline_mse": round(mean_mse, 4), "onnx_vs_numpy_max_abs_diff": max_diff,
        "sha256": digest,
    }
    print(json.dumps(metrics, indent=2))


def write_golden(events, session):
    """A few real events (with and without weather) with their features and ONNX embeddings."""
    picks = [e for e in events if e["weather"] is not None][:3] + [e for e in events if e["weather"] is None][:2]
    golden = []
    for e in picks:
        f = features(e)
        emb = session.run(["embedding"], {"features": np.array([f], dtype=np.float32)})[0][0]
        record = {k: v for k, v in e.items() if k != "utc_day"}
        golden.append({"event": record, "features": [None if math.isnan(v) else v for v in f],
                       "embedding": [float(v) for v in emb]})
    (MODELS / "fixtures" / "event_encoder_golden.json").write_text(json.dumps(golden, indent=1) + "\n")


if __name__ == "__main__":
    main()
