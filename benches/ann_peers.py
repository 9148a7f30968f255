"""hnswlib and FAISS on the files `benches/ann.rs` wrote, with the same M, efConstruction, ef
sweep, recall definition and thread counts; then one table with FireSight's results beside them.

Run through `scripts/bench-ann.sh`, which builds and runs the Rust side first.
"""

import json
import os
import resource
import sys
import time

import numpy as np

K = 10
M = 64
EF_CONSTRUCTION = 200
EFS = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512]
TARGETS = [0.99, 0.995, 0.999]


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    dim = raw[0]
    rows = raw.reshape(-1, dim + 1)[:, 1:]
    return np.ascontiguousarray(rows.view(dtype))


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def recall(found, truth):
    hits = sum(len(set(f[:K]) & set(t[:K])) for f, t in zip(found, truth))
    return hits / (len(truth) * K)


def run_hnswlib(base, queries, truth, reps, report, name):
    import hnswlib

    before = rss()
    index = hnswlib.Index(space="l2", dim=base.shape[1])
    index.init_index(max_elements=len(base), M=M, ef_construction=EF_CONSTRUCTION, random_seed=7)
    index.set_num_threads(1)
    start = time.perf_counter()
    index.add_items(base, np.arange(len(base)), num_threads=1)
    build = len(base) / (time.perf_counter() - start)
    memory = (rss() - before) / len(base)
    report.append(dict(set=name, engine="hnswlib", kind="build", threads=1, vectors_per_s=build, bytes_per_vector=memory))
    index2 = hnswlib.Index(space="l2", dim=base.shape[1])
    index2.init_index(max_elements=len(base), M=M, ef_construction=EF_CONSTRUCTION, random_seed=7)
    start = time.perf_counter()
    index2.add_items(base, np.arange(len(base)), num_threads=2)
    report.append(dict(set=name, engine="hnswlib", kind="build", threads=2, vectors_per_s=len(base) / (time.perf_counter() - start), bytes_per_vector=memory))
    del index2
    many = np.ascontiguousarray(np.tile(queries, (reps, 1)))
    for threads in (1, 2):
        for ef in EFS:
            index.set_ef(max(ef, K))
            start = time.perf_counter()
            labels, _ = index.knn_query(many, k=K, num_threads=threads)
            qps = len(many) / (time.perf_counter() - start)
            r = recall(labels[: len(queries)], truth)
            report.append(dict(set=name, engine="hnswlib", kind="query", threads=threads, ef=ef, recall=r, qps=qps))
            print(f"{name}: hnswlib ef {ef:>3} threads {threads}: recall@10 {r:.4} {qps:>8.0f} QPS", flush=True)


def run_faiss(base, queries, truth, reps, report, name):
    import faiss

    faiss.omp_set_num_threads(1)
    before = rss()
    index = faiss.IndexHNSWFlat(base.shape[1], M)
    index.hnsw.efConstruction = EF_CONSTRUCTION
    start = time.perf_counter()
    index.add(base)
    build = len(base) / (time.perf_counter() - start)
    memory = (rss() - before) / len(base)
    report.append(dict(set=name, engine="faiss", kind="build", threads=1, vectors_per_s=build, bytes_per_vector=memory))
    faiss.omp_set_num_threads(2)
    index2 = faiss.IndexHNSWFlat(base.shape[1], M)
    index2.hnsw.efConstruction = EF_CONSTRUCTION
    start = time.perf_counter()
    index2.add(base)
    report.append(dict(set=name, engine="faiss", kind="build", threads=2, vectors_per_s=len(base) / (time.perf_counter() - start), bytes_per_vector=memory))
    del index2
    many = np.ascontiguousarray(np.tile(queries, (reps, 1)))
    for threads in (1, 2):
        faiss.omp_set_num_threads(threads)
        for ef in EFS:
            params = faiss.SearchParametersHNSW(efSearch=max(ef, K))
            start = time.perf_counter()
            _, labels = index.search(many, K, params=params)
            qps = len(many) / (time.perf_counter() - start)
            r = recall(labels[: len(queries)], truth)
            report.append(dict(set=name, engine="faiss", kind="query", threads=threads, ef=ef, recall=r, qps=qps))
            print(f"{name}: faiss ef {ef:>3} threads {threads}: recall@10 {r:.4} {qps:>8.0f} QPS", flush=True)


def run_faiss_flat(base, queries, truth, reps, report, name):
    """FAISS's exact scan (IndexFlatL2): no build, recall 1 by definition."""
    import faiss

    index = faiss.IndexFlatL2(base.shape[1])
    index.add(base)
    # A fifth of the repeated queries, as on the Rust side: a scan costs ~100 graph searches.
    many = np.ascontiguousarray(np.tile(queries, (reps, 1)))
    many = many[: max((len(many) + 4) // 5, len(queries))]
    for threads in (1, 2):
        faiss.omp_set_num_threads(threads)
        start = time.perf_counter()
        _, labels = index.search(many, K)
        qps = len(many) / (time.perf_counter() - start)
        r = recall(labels[: len(queries)], truth)
        report.append(dict(set=name, engine="faiss-flat", kind="query", threads=threads, ef=0, recall=r, qps=qps))
        print(f"{name}: faiss-flat threads {threads}: recall@10 {r:.4} {qps:>8.0f} QPS", flush=True)


def best_qps(rows, target):
    """Highest QPS among the ef settings that reach `target` recall (None when none does)."""
    ok = [r["qps"] for r in rows if r["recall"] >= target]
    return max(ok) if ok else None


def table(report):
    engines = ["firesight-native", "hnswlib", "faiss", "hnsw_rs", "firesight-exact", "faiss-flat"]
    lines = []
    for r in report:
        if r.get("kind") == "snapshot":
            lines.append(
                f"\nSnapshot, {r['points']:,} vectors: build {r['build_s']:.1f} s, save {r['save_s']:.2f} s, "
                f"load {r['load_s']:.2f} s ({r['bytes'] / 1e6:,.0f} MB); {r['self_hits_per_1000']}/1000 probes find themselves"
            )
    for name in dict.fromkeys(r["set"] for r in report if r.get("kind") != "snapshot"):
        lines.append(f"\n### {name}\n")
        head = "| engine | build 1 thr (vec/s) | build 2 thr (vec/s) | B/vector (RSS) |"
        for threads in (1, 2):
            head += "".join(f" QPS@{t} {threads} thr |" for t in TARGETS)
        lines.append(head)
        lines.append("|" + "---|" * (head.count("|") - 1))
        for engine in engines:
            rows = [r for r in report if r["set"] == name and r["engine"] == engine]
            if not rows:
                continue
            builds = {r["threads"]: r for r in rows if r["kind"] == "build"}
            cells = [engine]
            cells.append(f"{builds[1]['vectors_per_s']:,.0f}" if 1 in builds else "–")
            cells.append(f"{builds[2]['vectors_per_s']:,.0f}" if 2 in builds else "–")
            cells.append(f"{builds[1]['bytes_per_vector']:,.0f}" if 1 in builds else "–")
            for threads in (1, 2):
                queries = [r for r in rows if r["kind"] == "query" and r["threads"] == threads]
                for t in TARGETS:
                    q = best_qps(queries, t)
                    cells.append("not reached" if q is None else f"{q:,.0f}")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    out = sys.argv[1]
    sift = sys.argv[2]
    report = json.load(open(os.path.join(out, "ours.json")))
    sets = [
        ("siftsmall", os.path.join(sift, "siftsmall_base.fvecs"), os.path.join(sift, "siftsmall_query.fvecs"), os.path.join(sift, "siftsmall_groundtruth.ivecs")),
        ("events108k", os.path.join(out, "events_base.fvecs"), os.path.join(out, "events_query.fvecs"), os.path.join(out, "events_groundtruth.ivecs")),
    ]
    peers = []
    for name, b, q, t in sets:
        base, queries = read_vecs(b, np.float32), read_vecs(q, np.float32)
        truth = read_vecs(t, np.int32)
        reps = max(20000 // len(queries), 1)
        run_hnswlib(base, queries, truth, reps, peers, name)
        run_faiss(base, queries, truth, reps, peers, name)
        run_faiss_flat(base, queries, truth, reps, peers, name)
    json.dump(peers, open(os.path.join(out, "peers.json"), "w"), indent=1)
    print(table(report + peers))


if __name__ == "__main__":
    main()
