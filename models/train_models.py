#!/usr/bin/env python3
"""Train FireSight's event encoder v2 and its three predictors, and export them to ONNX.

    python3 -m pip install -r models/requirements-train.txt
    python3 models/train_models.py

Every model but growth-outlook v2 takes the same input as the encoder, `features` float32 [batch, 22] in the order of
src/embed/features.rs (raw values, NaN for missing weather), so the service computes one feature
row per event and runs each model on it.

- event-encoder v2: contrastive (InfoNCE) over detections of the same incident, with a
  multi-scale Fourier encoding of location and a fine encoding of the day, L2-normalised output.
- fire-danger v1: P(fire) from temperature, humidity, wind and rain (Algerian data set, UCI).
- fire-danger v2: P(fire) from the station's Fire Weather Index codes (FFMC, ISI, BUI) where the
  event has them, else v1's model on its weather. Input: the 22 features followed by the six
  codes (FIRE_WEATHER: FFMC, DMC, DC, ISI, BUI, FWI; NaN when absent), width 28.
- growth-outlook v1: P(more detections within 3 km in the next 24 h than in the past 24 h).
- growth-outlook v2: P(an incident adds >= 1 km2 of burned area within 24 h), from the rows
  `cargo run --locked --profile test --example incident_states` writes (the tracker's own
  incident states, models/data/incident_states.csv); input width 25 (tracker::outlook).
- anomaly v1: autoencoder reconstruction error, mapped to its percentile on the training rows.

Seeded, single-threaded BLAS: a rerun writes byte-identical ONNX files. Writes the files, their
entries in models/manifest.json, models/fixtures/predictions_golden.json and models/metrics.json,
and prints the metrics recorded in the model cards.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import csv
import datetime as dt
import hashlib
import json
import math
import pathlib
import sys

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from train_event_encoder import FEATURES, HELD_OUT_FROM, features, load_events  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
SHARED = ROOT.parent / "shared" / "data"
SEED = 11
EARTH_KM = 6371.0088
LINK_KM, LINK_HOURS = 3.0, 24.0  # the service's incident rule (config `incidents`)
LOC, DOY = slice(0, 3), slice(12, 14)
WEATHER = [15, 18, 19, 17]  # max temperature, RH 3 pm, wind 3 pm, log1p rain
FIRE_WEATHER = ["ffmc", "dmc", "dc", "isi", "bui", "fwi"]  # appended to the features: width 28
WIDE = len(FEATURES) + len(FIRE_WEATHER)
# The codes fire-danger v2 reads, chosen before looking at any result: FFMC (fine fuels, the
# day's ignition potential), ISI (FFMC with wind: spread) and BUI (DMC and DC: fuel available).
DANGER_CODES = ["ffmc", "isi", "bui"]
SPUN_UP_DAYS = 21  # a series younger than this still remembers its start-up DMC: codes absent
OPSET = 17


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------

def load_usa_modis():
    """The US MODIS NRT file: another region and year, never trained on (no weather joined)."""
    path = SHARED / "firms" / "MODIS_C6_USA_contiguous_and_Hawaii_24h.2020-10-01.csv"
    events = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            hhmm = int(row["acq_time"])
            at = dt.datetime.strptime(row["acq_date"], "%Y-%m-%d").replace(
                hour=hhmm // 100, minute=hhmm % 100, tzinfo=dt.timezone.utc)
            conf = float(row["confidence"])
            events.append({
                "latitude": float(row["latitude"]), "longitude": float(row["longitude"]),
                "detection_time": int(at.timestamp() * 1000), "brightness_k": float(row["brightness"]),
                "brightness_background_k": float(row["bright_t31"]), "frp_mw": float(row["frp"]),
                "scan_km": float(row["scan"]), "track_km": float(row["track"]), "confidence_percent": conf,
                "confidence": "low" if conf < 30 else ("nominal" if conf < 80 else "high"),
                "daytime": row["daynight"] == "D", "instrument": "MODIS", "weather": None,
                "utc_day": at.date(),
            })
    return events


def incidents(events):
    """Incident label per event: detections within LINK_KM and LINK_HOURS of each other, chained."""
    n = len(events)
    lat = np.radians([e["latitude"] for e in events])
    lon = np.radians([e["longitude"] for e in events])
    t = np.array([e["detection_time"] for e in events], dtype=np.float64) / 3.6e6
    xyz = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], 1)
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    order = np.argsort(t, kind="stable")
    chord = 2 * math.sin(LINK_KM / EARTH_KM / 2)
    start = 0
    for a_pos, a in enumerate(order):
        while t[order[start]] < t[a] - LINK_HOURS:
            start += 1
        window = order[start:a_pos]
        if len(window) == 0:
            continue
        near = window[np.linalg.norm(xyz[window] - xyz[a], axis=1) <= chord]
        for b in near:
            ra, rb = find(a), find(int(b))
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(i) for i in range(n)])


def growth_labels(events):
    """1 when more detections fall within LINK_KM in the next 24 h than in the past 24 h; NaN when
    the next 24 h run past the end of the data."""
    lat = np.radians([e["latitude"] for e in events])
    lon = np.radians([e["longitude"] for e in events])
    t = np.array([e["detection_time"] for e in events], dtype=np.float64) / 3.6e6
    xyz = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], 1)
    chord = 2 * math.sin(LINK_KM / EARTH_KM / 2)
    order = np.argsort(t, kind="stable")
    ts = t[order]
    labels = np.full(len(events), np.nan)
    prev_counts = np.zeros(len(events))
    end = ts[-1]
    for pos, i in enumerate(order):
        lo = np.searchsorted(ts, t[i] - 24.0, "left")
        hi = np.searchsorted(ts, t[i] + 24.0, "right")
        cand = order[lo:hi]
        near = cand[np.linalg.norm(xyz[cand] - xyz[i], axis=1) <= chord]
        before = int((t[near] < t[i]).sum())
        after = int((t[near] > t[i]).sum())
        prev_counts[i] = before
        if t[i] + 24.0 <= end:
            labels[i] = 1.0 if after > before else 0.0
    return labels, prev_counts


def load_algerian():
    """Both regional tables of the UCI Algerian file. The one row whose DC and ISI columns ran
    together (14/07/2012, Sidi-Bel Abbes) keeps its weather and loses its FWI values, loudly."""
    rows, region, repaired = [], None, []
    with open(SHARED / "uci" / "Algerian_forest_fires_dataset_UPDATE.csv", newline="") as f:
        for line_no, raw in enumerate(csv.reader(f), start=1):
            cells = [c.strip() for c in raw]
            if not any(cells):
                continue
            if cells[0].endswith("Region Dataset"):
                region = cells[0].replace(" Region Dataset", "")
                continue
            if cells[0] == "day":
                continue
            if len([c for c in cells if c]) == 13:  # DC and ISI merged: "14.6 9"
                repaired.append(line_no)
                cells = cells[:9] + ["", ""] + cells[10:13]
            label = cells[13].lower().strip()
            if label not in ("fire", "not fire"):
                raise ValueError(f"line {line_no}: class {cells[13]!r} is neither fire nor not fire")
            num = [float(c) if c else float("nan") for c in cells[3:13]]
            rows.append({"region": region, "line": line_no, "temp": num[0], "rh": num[1], "ws": num[2],
                         "rain": num[3], "ffmc": num[4], "dmc": num[5], "dc": num[6], "isi": num[7],
                         "bui": num[8], "fwi": num[9], "fire": 1.0 if label == "fire" else 0.0})
    return rows, repaired


# ---------------------------------------------------------------------------------------------
# Numpy training
# ---------------------------------------------------------------------------------------------

class Mlp:
    """Dense layers with tanh between them, trained by Adam on a gradient supplied by the caller."""

    def __init__(self, rng, sizes, lr):
        self.params = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            self.params += [rng.normal(0, math.sqrt(1.0 / n_in), (n_in, n_out)), np.zeros(n_out)]
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t, self.lr = 0, lr

    def forward(self, x):
        acts = [x]
        layers = len(self.params) // 2
        for k in range(layers):
            y = acts[-1] @ self.params[2 * k] + self.params[2 * k + 1]
            acts.append(np.tanh(y) if k < layers - 1 else y)
        return acts

    def backward(self, acts, grad):
        grads = [None] * len(self.params)
        for k in reversed(range(len(self.params) // 2)):
            grads[2 * k] = acts[k].T @ grad
            grads[2 * k + 1] = grad.sum(0)
            if k:
                grad = (grad @ self.params[2 * k].T) * (1 - acts[k] ** 2)
        self.t += 1
        for i, g in enumerate(grads):
            self.m[i] = 0.9 * self.m[i] + 0.1 * g
            self.v[i] = 0.999 * self.v[i] + 0.001 * g * g
            m_hat = self.m[i] / (1 - 0.9 ** self.t)
            v_hat = self.v[i] / (1 - 0.999 ** self.t)
            self.params[i] -= self.lr * m_hat / (np.sqrt(v_hat) + 1e-8)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -40, 40)))


def train_binary(rng, x, y, hidden, epochs, lr, l2=1e-4):
    sizes = [x.shape[1]] + ([hidden] if hidden else []) + [1]
    model = Mlp(rng, sizes, lr)
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(order), 256):
            idx = order[start:start + 256]
            acts = model.forward(x[idx])
            p = sigmoid(acts[-1][:, 0])
            grad = ((p - y[idx]) / len(idx))[:, None]
            model.backward(acts, grad)
            for k in range(0, len(model.params), 2):
                model.params[k] *= 1 - l2
    return model


def auc(score, label):
    """Area under the ROC curve, ties counted half (Mann-Whitney U)."""
    score, label = np.asarray(score, float), np.asarray(label, float)
    order = np.argsort(score, kind="stable")
    ranks = np.empty(len(score))
    s = score[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    pos = label == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# ---------------------------------------------------------------------------------------------
# Event encoder v2
# ---------------------------------------------------------------------------------------------

LOC_SCALES_KM = [4.0, 20.0, 150.0]
LOC_FREQS = 16
DOY_DOUBLINGS = 5  # day of year at periods 365/2 … 365/32 days
HIDDEN_V2, EMBED_V2 = 96, 16
TAU = 0.1


class Expander:
    """The encoder's input layer, shared by numpy training and the ONNX graph: z-scored features,
    random Fourier features of the location at several scales, and the day-of-year angle doubled
    repeatedly (sin/cos of 2θ, 4θ, … by the double-angle formulas)."""

    def __init__(self, rng, mean, std):
        self.mean, self.std = mean, std
        blocks = [rng.normal(0, EARTH_KM / s, (3, LOC_FREQS)) for s in LOC_SCALES_KM]
        self.omega = np.concatenate(blocks, 1)
        self.phase_width = self.omega.shape[1]

    def numpy(self, x):
        imputed = np.where(np.isnan(x), self.mean, x)
        z = (imputed - self.mean) / self.std
        proj = x[:, LOC] @ self.omega
        s, c = x[:, 12], x[:, 13]
        doubled = []
        for _ in range(DOY_DOUBLINGS):
            s, c = 2 * s * c, c * c - s * s
            doubled += [s, c]
        return np.concatenate([z, np.sin(proj), np.cos(proj), np.stack(doubled, 1)], 1)

    def width(self):
        return len(FEATURES) + 2 * self.phase_width + 2 * DOY_DOUBLINGS

    def nodes(self, inits):
        """Nodes from `features` to `expanded`."""
        inits += [numpy_helper.from_array(a.astype(np.float32), n) for a, n in [
            (self.mean, "mean"), (self.std, "std"), (self.omega, "omega"), (np.array([2.0]), "two")]]
        inits += [numpy_helper.from_array(np.array(v, np.int64), n) for v, n in [
            ([0], "c0"), ([3], "c3"), ([12], "c12"), ([13], "c13"), ([14], "c14"), ([1], "axis1")]]
        nodes = [
            helper.make_node("IsNaN", ["features"], ["missing"]),
            helper.make_node("Where", ["missing", "mean", "features"], ["imputed"]),
            helper.make_node("Sub", ["imputed", "mean"], ["centred"]),
            helper.make_node("Div", ["centred", "std"], ["z"]),
            helper.make_node("Slice", ["features", "c0", "c3", "axis1"], ["loc"]),
            helper.make_node("MatMul", ["loc", "omega"], ["proj"]),
            helper.make_node("Sin", ["proj"], ["loc_sin"]),
            helper.make_node("Cos", ["proj"], ["loc_cos"]),
            helper.make_node("Slice", ["features", "c12", "c13", "axis1"], ["s0"]),
            helper.make_node("Slice", ["features", "c13", "c14", "axis1"], ["k0"]),
        ]
        parts = []
        for i in range(DOY_DOUBLINGS):
            s, c = f"s{i}", f"k{i}"
            nodes += [
                helper.make_node("Mul", [s, c], [f"sc{i}"]),
                helper.make_node("Mul", [f"sc{i}", "two"], [f"s{i + 1}"]),
                helper.make_node("Mul", [c, c], [f"cc{i}"]),
                helper.make_node("Mul", [s, s], [f"ss{i}"]),
                helper.make_node("Sub", [f"cc{i}", f"ss{i}"], [f"k{i + 1}"]),
            ]
            parts += [f"s{i + 1}", f"k{i + 1}"]
        nodes.append(helper.make_node("Concat", ["z", "loc_sin", "loc_cos", *parts], ["expanded"], axis=1))
        return nodes


def train_encoder_v2(x_train, inc_train, day_train, mean, std):
    rng = np.random.default_rng(SEED)
    expander = Expander(rng, mean, std)
    e_train = expander.numpy(x_train)
    members = {}
    for i, g in enumerate(inc_train):
        members.setdefault(g, []).append(i)
    groups = [np.array(m) for m in members.values() if len(m) >= 2]
    group_days = np.array([day_train[g[0]] for g in groups])
    days = np.unique(group_days)
    model = Mlp(rng, [expander.width(), HIDDEN_V2, EMBED_V2], 2e-3)
    batch, steps = 256, 2500
    for _ in range(steps):
        # Half the batch from one day (concurrent fires are the hard negatives), half at random.
        on_day = np.flatnonzero(group_days == days[rng.integers(len(days))])
        pick = rng.choice(on_day, min(len(on_day), batch // 2), replace=False)
        pick = np.concatenate([pick, rng.choice(len(groups), batch - len(pick), replace=False)])
        pick = np.unique(pick)
        pairs = np.array([rng.choice(groups[g], 2, replace=False) for g in pick])
        rows = np.concatenate([pairs[:, 0], pairs[:, 1]])
        acts = model.forward(e_train[rows])
        out = acts[-1]
        norm = np.linalg.norm(out, axis=1, keepdims=True) + 1e-12
        emb = out / norm
        n = len(pick)
        a, p = emb[:n], emb[n:]
        s = a @ p.T / TAU
        rows_sm = np.exp(s - s.max(1, keepdims=True))
        rows_sm /= rows_sm.sum(1, keepdims=True)
        cols_sm = np.exp(s - s.max(0, keepdims=True))
        cols_sm /= cols_sm.sum(0, keepdims=True)
        g = 0.5 * ((rows_sm - np.eye(n)) + (cols_sm - np.eye(n))) / n
        g_emb = np.concatenate([g @ p, g.T @ a]) / TAU
        g_out = (g_emb - emb * (emb * g_emb).sum(1, keepdims=True)) / norm
        model.backward(acts, g_out)
    return expander, model


def encode_v2(expander, model, x):
    out = model.forward(expander.numpy(x))[-1]
    return out / (np.linalg.norm(out, axis=1, keepdims=True) + 1e-12)


def precision_at_10(vectors, labels):
    """Mean share of the 10 nearest (L2, itself excluded) in the query's incident, over queries whose
    incident has at least 11 detections."""
    sizes = {g: c for g, c in zip(*np.unique(labels, return_counts=True))}
    queries = [i for i in range(len(labels)) if sizes[labels[i]] >= 11]
    sq = (vectors ** 2).sum(1)
    hits = []
    for start in range(0, len(queries), 512):
        q = np.array(queries[start:start + 512])
        d = sq[q][:, None] + sq[None, :] - 2 * vectors[q] @ vectors.T
        d[np.arange(len(q)), q] = np.inf
        nearest = np.argpartition(d, 10, axis=1)[:, :10]
        hits.extend((labels[nearest] == labels[q][:, None]).mean(1))
    return float(np.mean(hits)), len(queries)


# ---------------------------------------------------------------------------------------------
# ONNX export
# ---------------------------------------------------------------------------------------------

def dense_nodes(model, prefix, source, inits, final):
    layers = len(model.params) // 2
    nodes, current = [], source
    for k in range(layers):
        w, b = (model.params[2 * k + j].astype(np.float32) for j in range(2))
        inits += [numpy_helper.from_array(w, f"{prefix}w{k}"), numpy_helper.from_array(b, f"{prefix}b{k}")]
        nodes += [helper.make_node("MatMul", [current, f"{prefix}w{k}"], [f"{prefix}m{k}"]),
                  helper.make_node("Add", [f"{prefix}m{k}", f"{prefix}b{k}"], [f"{prefix}a{k}"])]
        current = f"{prefix}a{k}"
        if k < layers - 1:
            nodes.append(helper.make_node("Tanh", [current], [f"{prefix}t{k}"]))
            current = f"{prefix}t{k}"
    nodes.append(helper.make_node("Identity", [current], [final]))
    return nodes


def save(nodes, inits, output, width, path, graph_name, input_width=len(FEATURES)):
    graph = helper.make_graph(
        nodes, graph_name,
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", input_width])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", width])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="firesight-train")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def export_encoder_v2(expander, model, path):
    inits = []
    nodes = expander.nodes(inits)
    nodes += dense_nodes(model, "enc_", "expanded", inits, "raw")
    inits.append(numpy_helper.from_array(np.array([1e-12], np.float32), "eps"))
    nodes += [helper.make_node("ReduceL2", ["raw"], ["norm"], axes=[1], keepdims=1),
              helper.make_node("Add", ["norm", "eps"], ["norm_eps"]),
              helper.make_node("Div", ["raw", "norm_eps"], ["embedding"])]
    return save(nodes, inits, "embedding", EMBED_V2, path, "firesight_event_encoder_v2")


def export_binary(model, cols, mean, std, path, graph_name, impute, input_width=len(FEATURES)):
    """Gather `cols` of the feature row, (NaN -> mean when `impute`), z-score, MLP, sigmoid."""
    inits = [numpy_helper.from_array(np.array(cols, np.int64), "cols"),
             numpy_helper.from_array(mean.astype(np.float32), "mean"),
             numpy_helper.from_array(std.astype(np.float32), "std")]
    nodes = [helper.make_node("Gather", ["features", "cols"], ["picked"], axis=1)]
    source = "picked"
    if impute:
        nodes += [helper.make_node("IsNaN", ["picked"], ["missing"]),
                  helper.make_node("Where", ["missing", "mean", "picked"], ["imputed"])]
        source = "imputed"
    nodes += [helper.make_node("Sub", [source, "mean"], ["centred"]),
              helper.make_node("Div", ["centred", "std"], ["z"])]
    nodes += dense_nodes(model, "clf_", "z", inits, "logit")
    nodes.append(helper.make_node("Sigmoid", ["logit"], ["prediction"]))
    return save(nodes, inits, "prediction", 1, path, graph_name, input_width)


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------

def event_encoder(x, events, usa_x, usa_events, train_rows):
    x_train = x[train_rows]
    mean = np.nanmean(x_train, axis=0)
    std = np.nanstd(x_train, axis=0)
    std[std < 1e-6] = 1.0
    labels = incidents(events)
    days = np.array([e["utc_day"].toordinal() for e in events])
    expander, model = train_encoder_v2(x_train, labels[train_rows], days[train_rows], mean, std)

    def raw(xs):
        return np.where(np.isnan(xs), 0.0, (xs - mean) / std)

    held_labels = incidents([e for e, r in zip(events, train_rows) if not r])
    usa_labels = incidents(usa_events)
    def space_time(xs, evs):
        # Position in units of the link distance and time in units of the link window: the
        # incident rule itself as a metric, the strongest simple baseline for this task.
        hours = np.array([e["detection_time"] for e in evs], dtype=np.float64) / 3.6e6
        return np.concatenate([xs[:, LOC] * EARTH_KM / LINK_KM, (hours / LINK_HOURS)[:, None]], 1)

    held_events = [e for e, r in zip(events, train_rows) if not r]
    result = {}
    for split, xs, evs, lab in [("held_out_period", x[~train_rows], held_events, held_labels),
                                ("other_region_usa_2020", usa_x, usa_events, usa_labels)]:
        base, n = precision_at_10(raw(xs), lab)
        st, _ = precision_at_10(space_time(xs, evs), lab)
        v2, _ = precision_at_10(encode_v2(expander, model, xs), lab)
        result[split] = {"queries": n, "incidents": int(len(np.unique(lab))),
                         "raw_features_p_at_10": round(base, 4), "space_time_only_p_at_10": round(st, 4),
                         "encoder_v2_p_at_10": round(v2, 4)}
    # v1 on the same splits, for the card.
    v1 = onnxruntime.InferenceSession(str(MODELS / "event_encoder.onnx"), providers=["CPUExecutionProvider"])
    result["held_out_period"]["encoder_v1_p_at_10"] = round(precision_at_10(
        v1.run(["embedding"], {"features": x[~train_rows].astype(np.float32)})[0].astype(np.float64), held_labels)[0], 4)
    result["other_region_usa_2020"]["encoder_v1_p_at_10"] = round(precision_at_10(
        v1.run(["embedding"], {"features": usa_x.astype(np.float32)})[0].astype(np.float64), usa_labels)[0], 4)

    path = MODELS / "event_encoder_v2.onnx"
    session = export_encoder_v2(expander, model, path)
    onnx_out = session.run(["embedding"], {"features": x[~train_rows].astype(np.float32)})[0]
    diff = float(np.abs(onnx_out - encode_v2(expander, model, x[~train_rows])).max())
    assert diff < 1e-3, f"encoder v2 ONNX differs from numpy by {diff}"
    entry = {"name": "event-encoder", "version": "2", "kind": "event-encoder", "file": path.name,
             "input": "features", "input_width": len(FEATURES), "output": "embedding", "output_dim": EMBED_V2,
             "normalisation": "inside the graph: NaN -> training mean, z-score; Fourier features of location "
                              "and day of year; output L2-normalised"}
    return entry, result


def wide_features(event):
    """The 22 features, then the Fire Weather Index codes (NaN when the event has none): the
    input of the predictors that read them (src/embed/features.rs, `predictor_features`)."""
    codes = event.get("fire_weather") or {}
    if codes.get("days_in_series", 0) < SPUN_UP_DAYS:
        codes = {}
    return features(event) + [codes.get(k, float("nan")) for k in FIRE_WEATHER]


def export_danger_v2(model, mean, std, fallback, path):
    """p = sigmoid(MLP(z-scored codes)) where every code is there, else v1's graph on weather."""
    model_v1, mean_v1, std_v1 = fallback
    cols = [len(FEATURES) + FIRE_WEATHER.index(c) for c in DANGER_CODES]
    inits = [numpy_helper.from_array(np.array(cols, np.int64), "cols"),
             numpy_helper.from_array(mean.astype(np.float32), "mean"),
             numpy_helper.from_array(std.astype(np.float32), "std"),
             numpy_helper.from_array(np.array(WEATHER, np.int64), "v1_cols"),
             numpy_helper.from_array(mean_v1.astype(np.float32), "v1_mean"),
             numpy_helper.from_array(std_v1.astype(np.float32), "v1_std")]
    nodes = [helper.make_node("Gather", ["features", "cols"], ["picked"], axis=1),
             helper.make_node("Sub", ["picked", "mean"], ["centred"]),
             helper.make_node("Div", ["centred", "std"], ["z"])]
    nodes += dense_nodes(model, "clf_", "z", inits, "logit")
    nodes += [helper.make_node("Sigmoid", ["logit"], ["p_codes"]),
              helper.make_node("Gather", ["features", "v1_cols"], ["v1_picked"], axis=1),
              helper.make_node("Sub", ["v1_picked", "v1_mean"], ["v1_centred"]),
              helper.make_node("Div", ["v1_centred", "v1_std"], ["v1_z"])]
    nodes += dense_nodes(model_v1, "v1_", "v1_z", inits, "v1_logit")
    nodes += [helper.make_node("Sigmoid", ["v1_logit"], ["p_weather"]),
              helper.make_node("IsNaN", ["p_codes"], ["no_codes"]),
              helper.make_node("Where", ["no_codes", "p_weather", "p_codes"], ["prediction"])]
    return save(nodes, inits, "prediction", 1, path, "firesight_fire_danger_v2", input_width=WIDE)


def fire_danger_v2(fallback):
    """Trained and held out like v1 (Bejaia / Sidi-Bel Abbes), on the days that have codes."""
    rows, _ = load_algerian()
    coded = [r for r in rows if not any(math.isnan(r[c]) for c in DANGER_CODES)]
    train = [r for r in coded if r["region"] == "Bejaia"]
    test = [r for r in rows if r["region"] != "Bejaia"]
    test_coded = [r for r in test if r in coded]

    def codes(rs):
        return np.array([[r[c] for c in DANGER_CODES] for r in rs])

    def weather(rs):
        return np.array([[r["temp"], r["rh"], r["ws"], math.log1p(max(r["rain"], 0.0))] for r in rs])

    x_train = codes(train)
    y_train = np.array([r["fire"] for r in train])
    mean, std = x_train.mean(0), x_train.std(0)
    rng = np.random.default_rng(SEED)
    model = train_binary(rng, (x_train - mean) / std, y_train, hidden=0, epochs=300, lr=1e-2)

    path = MODELS / "fire_danger_v2.onnx"
    session = export_danger_v2(model, mean, std, fallback, path)
    # The held-out rows as the service would see them: weather always, codes where they exist.
    probe = np.full((len(test), WIDE), np.nan)
    probe[:, WEATHER] = weather(test)
    for i, r in enumerate(test):
        for k, c in enumerate(FIRE_WEATHER):
            probe[i, len(FEATURES) + k] = r[c]
    p_all = session.run(["prediction"], {"features": probe.astype(np.float32)})[0][:, 0].astype(np.float64)
    y_test = np.array([r["fire"] for r in test])
    coded_idx = [i for i, r in enumerate(test) if r in coded]
    p_numpy = sigmoid(model.forward((codes(test_coded) - mean) / std)[-1][:, 0])
    assert np.abs(p_all[coded_idx] - p_numpy).max() < 1e-4
    model_v1, mean_v1, std_v1 = fallback
    p_v1 = sigmoid(model_v1.forward((weather(test) - mean_v1) / std_v1)[-1][:, 0])
    uncoded = [i for i in range(len(test)) if i not in coded_idx]
    assert np.abs(p_all[uncoded] - p_v1[uncoded]).max() < 1e-4, "v1 is the fallback"
    y_coded = y_test[coded_idx]
    result = {
        "train": f"Bejaia region, 2012 ({len(train)} days with codes)",
        "held_out": f"Sidi-Bel Abbes region, 2012 ({len(test)} days, {len(test_coded)} with codes)",
        "inputs": DANGER_CODES,
        "held_out_auc": round(auc(p_all, y_test), 4),
        "held_out_auc_days_with_codes": round(auc(p_all[coded_idx], y_coded), 4),
        "v1_same_days_auc": round(auc(p_v1[coded_idx], y_coded), 4),
        "v1_all_days_auc": round(auc(p_v1, y_test), 4),
        "reference_fwi_index_auc": round(auc([r["fwi"] for r in test_coded], y_coded), 4),
        "baseline_ffmc_only_auc": round(auc([r["ffmc"] for r in test_coded], y_coded), 4),
        "held_out_accuracy_at_0_5": round(float(((p_all >= 0.5) == (y_test == 1)).mean()), 4),
        "v1_accuracy_at_0_5": round(float(((p_v1 >= 0.5) == (y_test == 1)).mean()), 4),
    }
    entry = {"name": "fire-danger", "version": "2", "kind": "predictor", "prediction": "p_fire", "file": path.name,
             "input": "features", "input_width": WIDE, "output": "prediction", "output_dim": 1,
             "normalisation": "inside the graph: picks FFMC, ISI, BUI of the Fire Weather Index columns "
                              "(22-27), z-score; where any is NaN, fire-danger v1 on the weather columns "
                              "instead; no weather either -> NaN -> not reported"}
    return entry, result


def fire_danger():
    rows, repaired = load_algerian()
    train = [r for r in rows if r["region"] == "Bejaia"]
    test = [r for r in rows if r["region"] != "Bejaia"]

    def xs(rs):
        return np.array([[r["temp"], r["rh"], r["ws"], math.log1p(max(r["rain"], 0.0))] for r in rs])

    x_train, x_test = xs(train), xs(test)
    y_train = np.array([r["fire"] for r in train])
    y_test = np.array([r["fire"] for r in test])
    mean, std = x_train.mean(0), x_train.std(0)
    rng = np.random.default_rng(SEED)
    model = train_binary(rng, (x_train - mean) / std, y_train, hidden=0, epochs=300, lr=1e-2)
    p_test = sigmoid(model.forward((x_test - mean) / std)[-1][:, 0])
    fwi_rows = [i for i, r in enumerate(test) if not math.isnan(r["fwi"])]
    result = {
        "train": "Bejaia region, 2012 (122 days)", "held_out": "Sidi-Bel Abbes region, 2012 (122 days)",
        "held_out_auc": round(auc(p_test, y_test), 4),
        "baseline_humidity_only_auc": round(auc(-x_test[:, 1], y_test), 4),
        "baseline_temperature_only_auc": round(auc(x_test[:, 0], y_test), 4),
        "reference_fwi_index_auc": round(auc([test[i]["fwi"] for i in fwi_rows], y_test[fwi_rows]), 4),
        "held_out_accuracy_at_0_5": round(float(((p_test >= 0.5) == (y_test == 1)).mean()), 4),
        "repaired_lines": repaired,
    }
    path = MODELS / "fire_danger.onnx"
    session = export_binary(model, WEATHER, mean, std, path, "firesight_fire_danger", impute=False)
    probe = np.full((len(x_test), len(FEATURES)), 0.0)
    probe[:, WEATHER] = x_test
    onnx_p = session.run(["prediction"], {"features": probe.astype(np.float32)})[0][:, 0]
    assert np.abs(onnx_p - p_test).max() < 1e-4
    fire_danger.parts = (model, mean, std)  # fire-danger v2 falls back on this model
    entry = {"name": "fire-danger", "version": "1", "kind": "predictor", "prediction": "p_fire", "file": path.name,
             "input": "features", "input_width": len(FEATURES), "output": "prediction", "output_dim": 1,
             "normalisation": "inside the graph: picks max temperature, RH 3 pm, wind 3 pm, log1p rain; "
                              "z-score; no imputation (no weather -> NaN -> not reported)"}
    return entry, result


def imputed_mlp(x_train, y_train, hidden, epochs):
    """A binary MLP on z-scored columns, a missing value standing at the training mean (as the
    exported graph imputes it); returns the model, the mean and spread, and the scaling."""
    mean = np.nanmean(x_train, axis=0)
    std = np.nanstd(x_train, axis=0)
    std[std < 1e-6] = 1.0

    def z(xs):
        return np.where(np.isnan(xs), 0.0, (xs - mean) / std)

    rng = np.random.default_rng(SEED)
    return train_binary(rng, z(x_train), y_train, hidden=hidden, epochs=epochs, lr=2e-3), mean, std, z


def growth_outlook(x, events, train_rows):
    labels, prev = growth_labels(events)
    known = ~np.isnan(labels)
    tr, te = train_rows & known, ~train_rows & known
    model, mean, std, z = imputed_mlp(x[tr], labels[tr], hidden=32, epochs=30)
    p = sigmoid(model.forward(z(x[te]))[-1][:, 0])
    y = labels[te]
    result = {
        "label": "more detections within 3 km in the next 24 h than in the past 24 h",
        "train_rows": int(tr.sum()), "held_out_rows": int(te.sum()),
        "held_out_positive_rate": round(float(y.mean()), 4),
        "held_out_auc": round(auc(p, y), 4),
        "baseline_frp_only_auc": round(auc(x[te][:, 5], y), 4),
        "baseline_prior_always_auc": 0.5,
    }
    path = MODELS / "growth_outlook.onnx"
    session = export_binary(model, list(range(len(FEATURES))), mean, std, path, "firesight_growth_outlook", impute=True)
    onnx_p = session.run(["prediction"], {"features": x[te].astype(np.float32)})[0][:, 0]
    assert np.abs(onnx_p - p).max() < 1e-4
    entry = {"name": "growth-outlook", "version": "1", "kind": "predictor", "prediction": "p_growth_24h",
             "file": path.name, "input": "features", "input_width": len(FEATURES), "output": "prediction",
             "output_dim": 1, "normalisation": "inside the graph: NaN -> training mean, then z-score"}
    return entry, result


def average_precision(score, label):
    """Area under the precision-recall curve, as the mean precision at each positive (ties broken
    against the positives, so a constant score gets the positive rate)."""
    score, label = np.asarray(score, float), np.asarray(label, float)
    order = np.lexsort((label, -score))
    hits = np.cumsum(label[order])
    precision = hits / np.arange(1, len(order) + 1)
    return float((precision * label[order]).sum() / max(label.sum(), 1))


INCIDENT_ROWS = MODELS / "data" / "incident_states.csv"
GROWTH_KM2 = 1.0  # tracker::outlook::GROWTH_KM2
HORIZON_MS = 24 * 3_600_000


def load_incident_rows():
    """The rows `models/incident_states.rs` wrote: features as the tracker saw each incident after
    a granule, and the area it added in the next 24 h."""
    if not INCIDENT_ROWS.exists():
        sys.exit(f"{INCIDENT_ROWS} is missing: cargo run --locked --profile test --example incident_states")
    with INCIDENT_ROWS.open() as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    names = header[2:-1]
    x = np.array([[float(v) if v else np.nan for v in r[2:-1]] for r in rows], dtype=np.float64)
    as_of = np.array([int(r[1]) for r in rows], dtype=np.int64)
    added = np.array([float(r[-1]) for r in rows])
    return names, x, as_of, added


def growth_outlook_v2():
    names, x, as_of, added = load_incident_rows()
    y = (added >= GROWTH_KM2).astype(np.float64)
    boundary = int(dt.datetime.combine(HELD_OUT_FROM, dt.time(), dt.timezone.utc).timestamp() * 1000)
    # Training rows whose 24 h reach into the held-out days would see their growth: left out.
    tr = as_of + HORIZON_MS < boundary
    te = as_of >= boundary
    model, mean, std, z = imputed_mlp(x[tr], y[tr], hidden=16, epochs=40)
    p = sigmoid(model.forward(z(x[te]))[-1][:, 0])
    yt = y[te]
    col = {n: i for i, n in enumerate(names)}
    persistence = x[te][:, col["log_new_area_24h"]]
    size = x[te][:, col["log_area_km2"]]
    result = {
        "label": f"the incident adds at least {GROWTH_KM2} km2 of burned area within 24 h",
        "train_rows": int(tr.sum()), "held_out_rows": int(te.sum()),
        "held_out_positive_rate": round(float(yt.mean()), 4),
        "held_out_auc": round(auc(p, yt), 4),
        "held_out_auc_pr": round(average_precision(p, yt), 4),
        "baseline_persistence_auc": round(auc(persistence, yt), 4),
        "baseline_persistence_auc_pr": round(average_precision(persistence, yt), 4),
        "baseline_size_auc": round(auc(size, yt), 4),
        "baseline_size_auc_pr": round(average_precision(size, yt), 4),
        "baseline_prior_auc_pr": round(float(yt.mean()), 4),
    }
    path = MODELS / "growth_outlook_v2.onnx"
    session = export_binary(model, list(range(len(names))), mean, std, path, "firesight_growth_outlook_v2",
                            impute=True, input_width=len(names))
    onnx_p = session.run(["prediction"], {"features": x[te].astype(np.float32)})[0][:, 0]
    assert np.abs(onnx_p - p).max() < 1e-4
    # A few held-out rows with their outputs: tests/it checks Rust's runtime gives the same.
    picks = np.flatnonzero(te)[:: max(1, int(te.sum()) // 6)][:6]
    golden = {"feature_names": names,
              "rows": [[None if math.isnan(v) else float(v) for v in x[i]] for i in picks],
              "predictions": [float(v) for v in session.run(["prediction"], {"features": x[picks].astype(np.float32)})[0][:, 0]]}
    (MODELS / "fixtures" / "outlook_golden.json").write_text(json.dumps(golden, indent=1) + "\n")
    entry = {"name": "growth-outlook", "version": "2", "kind": "incident-predictor", "prediction": "p_growth_24h",
             "file": path.name, "input": "features", "input_width": len(names), "output": "prediction",
             "output_dim": 1,
             "normalisation": "inside the graph: NaN -> training mean, then z-score; rows from tracker::outlook"}
    return entry, result


def anomaly(x, train_rows):
    x_train, x_test = x[train_rows], x[~train_rows]
    mean = np.nanmean(x_train, axis=0)
    std = np.nanstd(x_train, axis=0)
    std[std < 1e-6] = 1.0

    # The day of year is an input but not scored: every new week of the season would otherwise
    # look anomalous (the held-out period lies past the training one).
    scored = np.ones(len(FEATURES))
    scored[DOY] = 0.0

    def z(xs):
        return np.where(np.isnan(xs), 0.0, (xs - mean) / std), (~np.isnan(xs)) * scored

    rng = np.random.default_rng(SEED)
    model = Mlp(rng, [len(FEATURES), 32, 8, 32, len(FEATURES)], 2e-3)
    z_train, m_train = z(x_train)
    for _ in range(30):
        order = rng.permutation(len(z_train))
        for start in range(0, len(order), 256):
            idx = order[start:start + 256]
            acts = model.forward(z_train[idx])
            grad = 2 * (acts[-1] - z_train[idx]) * m_train[idx] / m_train[idx].sum()
            model.backward(acts, grad)

    def error(xs):
        zs, ms = z(xs)
        return (((model.forward(zs)[-1] - zs) * ms) ** 2).sum(1) / ms.sum(1)

    quantiles = np.quantile(error(x_train), np.linspace(0.001, 0.999, 999))

    def score(xs):
        return (error(xs)[:, None] > quantiles[None, :]).mean(1)

    # Planted anomalies: held-out rows with one feature replaced by another row's value of a
    # different feature column's extreme (out of the joint distribution, often in range alone).
    corrupt = x_test.copy()
    cols = rng.integers(3, 9, len(corrupt))
    corrupt[np.arange(len(corrupt)), cols] = np.nanpercentile(x_train, 99.9, axis=0)[cols] * 1.5
    held = score(x_test)
    planted = score(corrupt)
    truth = np.concatenate([np.zeros(len(held)), np.ones(len(planted))])
    zdist = np.concatenate([np.linalg.norm(z(x_test)[0], axis=1), np.linalg.norm(z(corrupt)[0], axis=1)])
    result = {
        "calibration": "score = share of training rows with a lower reconstruction error",
        "held_out_share_above_0_99": round(float((held > 0.99).mean()), 4),
        "held_out_share_above_0_9": round(float((held > 0.9).mean()), 4),
        "held_out_median_score": round(float(np.median(held)), 4),
        "planted_vs_real_auc": round(auc(np.concatenate([held, planted]), truth), 4),
        "baseline_distance_to_mean_auc": round(auc(zdist, truth), 4),
    }
    inits = [numpy_helper.from_array(mean.astype(np.float32), "mean"),
             numpy_helper.from_array(std.astype(np.float32), "std"),
             numpy_helper.from_array(quantiles.astype(np.float32), "quantiles"),
             numpy_helper.from_array(np.ones((len(FEATURES), 1), np.float32), "ones"),
             numpy_helper.from_array(scored.astype(np.float32), "scored")]
    nodes = [helper.make_node("IsNaN", ["features"], ["missing"]),
             helper.make_node("Not", ["missing"], ["present_b"]),
             helper.make_node("Cast", ["present_b"], ["present_f"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["present_f", "scored"], ["present"]),
             helper.make_node("Where", ["missing", "mean", "features"], ["imputed"]),
             helper.make_node("Sub", ["imputed", "mean"], ["centred"]),
             helper.make_node("Div", ["centred", "std"], ["z"])]
    nodes += dense_nodes(model, "ae_", "z", inits, "recon")
    nodes += [helper.make_node("Sub", ["recon", "z"], ["diff"]),
              helper.make_node("Mul", ["diff", "present"], ["masked"]),
              helper.make_node("Mul", ["masked", "masked"], ["sq"]),
              # Row sums as a product with a column of ones, not ReduceSum: onnxruntime's
              # ReduceSum adds a row in an order that depends on where the row sits in the batch,
              # so the same event could score 1/999 apart in two batches (a restarted stream
              # consumer batches differently). Its MatMul gives every row the same bits.
              helper.make_node("MatMul", ["sq", "ones"], ["sq_sum"]),
              helper.make_node("MatMul", ["present", "ones"], ["n_present"]),
              helper.make_node("Div", ["sq_sum", "n_present"], ["error"]),
              helper.make_node("Greater", ["error", "quantiles"], ["above"]),
              helper.make_node("Cast", ["above"], ["above_f"], to=TensorProto.FLOAT),
              helper.make_node("ReduceMean", ["above_f"], ["prediction"], axes=[1], keepdims=1)]
    path = MODELS / "anomaly.onnx"
    session = save(nodes, inits, "prediction", 1, path, "firesight_anomaly")
    onnx_s = session.run(["prediction"], {"features": x_test.astype(np.float32)})[0][:, 0]
    mismatch = float(np.abs(onnx_s - held).max())
    assert mismatch <= 0.003, f"anomaly ONNX differs from numpy by {mismatch}"
    entry = {"name": "anomaly", "version": "1", "kind": "predictor", "prediction": "anomaly_score", "file": path.name,
             "input": "features", "input_width": len(FEATURES), "output": "prediction", "output_dim": 1,
             "normalisation": "inside the graph: NaN -> training mean, z-score; masked reconstruction error "
                              "mapped to its percentile among training rows (0..1)"}
    return entry, result


def update_manifest(entries):
    path = MODELS / "manifest.json"
    manifest = json.loads(path.read_text())
    for e in entries:
        e["sha256"] = hashlib.sha256((MODELS / e["file"]).read_bytes()).hexdigest()
    # Entries keep their place (other scripts' entries too), so a rerun leaves no diff. Keys this
    # script does not write stay (an encoder's "index" is measured by the ANN benchmark on its
    # vectors; after retraining an encoder, measure it again).
    fresh = {(e["name"], e["version"]): e for e in entries}
    models = [{**m, **fresh.pop((m["name"], m["version"]), {})} for m in manifest["models"]]
    manifest["models"] = models + list(fresh.values())
    path.write_text(json.dumps(manifest, indent=2) + "\n")


def write_golden(events, entries):
    """Predictions for a few real events, made by onnxruntime in Python; tests/it checks Rust's."""
    picks = [e for e in events if e["weather"] is not None][:2] + [e for e in events if e["weather"] is None][:2]
    # The service joins each station's Fire Weather Index codes; the training events carry
    # none, so the first gives the codes of a real day (Bejaia, 2012-08-07, 38 days into the
    # UCI series) to exercise both branches of fire-danger v2. The second has weather without
    # codes.
    picks[0] = dict(picks[0], fire_weather={"ffmc": 86.5, "dmc": 15.5, "dc": 48.6, "isi": 5.5,
                                            "bui": 17.2, "fwi": 8.0, "days_in_series": 38})
    golden = {"events": [{k: v for k, v in e.items() if k != "utc_day"} for e in picks], "models": {}}
    for entry in (e for e in entries if e["kind"] != "incident-predictor"):
        session = onnxruntime.InferenceSession(str(MODELS / entry["file"]), providers=["CPUExecutionProvider"])
        row = wide_features if entry["input_width"] == WIDE else features
        x = np.array([row(e) for e in picks], dtype=np.float32)
        out = session.run([entry["output"]], {"features": x})[0]
        golden["models"][f'{entry["name"]}@{entry["version"]}'] = [
            [None if math.isnan(v) else float(v) for v in row] for row in out]
    (MODELS / "fixtures" / "predictions_golden.json").write_text(json.dumps(golden, indent=1) + "\n")


def main():
    events = load_events()
    x = np.array([features(e) for e in events], dtype=np.float64)
    train_rows = np.array([e["utc_day"] < HELD_OUT_FROM for e in events])
    usa = load_usa_modis()
    usa_x = np.array([features(e) for e in usa], dtype=np.float64)

    metrics = {}
    entries = []
    for name, run in [("event-encoder@2", lambda: event_encoder(x, events, usa_x, usa, train_rows)),
                      ("fire-danger@1", fire_danger),
                      ("fire-danger@2", lambda: fire_danger_v2(fire_danger.parts)),
                      ("growth-outlook@1", lambda: growth_outlook(x, events, train_rows)),
                      ("growth-outlook@2", growth_outlook_v2),
                      ("anomaly@1", lambda: anomaly(x, train_rows))]:
        entry, result = run()
        entries.append(entry)
        metrics[name] = result
        print(name, json.dumps(result, indent=1), flush=True)
    update_manifest(entries)
    write_golden(events, entries)
    for e in entries:
        metrics[f'{e["name"]}@{e["version"]}']["sha256"] = e["sha256"]
    (MODELS / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")


if __name__ == "__main__":
    main()
