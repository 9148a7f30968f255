//! HDBSCAN* over a k-nearest-neighbour graph.
//!
//! Mutual-reachability distances on the kNN edges, a minimum spanning forest by Kruskal, the
//! single-linkage hierarchy it implies, condensed by a minimum cluster size, and the clusters
//! chosen by excess of mass. The graph is the only input, so the work is O(n k log(n k)) and
//! never O(n²): the caller decides how the neighbours were found (exactly, or by the index).

/// The neighbours of one point: (point index, distance), nearest first, the point itself excluded.
pub type NeighbourList = Vec<(u32, f32)>;

/// The result: a label per point (`None` is noise) and each cluster's stability.
#[derive(Debug, Clone, PartialEq)]
pub struct Clustering {
    /// Cluster number of each point, or `None` for noise. Numbers are dense from 0.
    pub labels: Vec<Option<u32>>,
    /// Excess of mass of each cluster (the persistence HDBSCAN selects by).
    pub stability: Vec<f64>,
}

struct Node {
    children: Option<(u32, u32)>,
    /// Mutual-reachability distance of the merge (0 for leaves).
    distance: f32,
    size: u32,
}

struct Cluster {
    parent: Option<usize>,
    birth: f64,
    stability: f64,
    children: Vec<usize>,
    selectable: bool,
}

/// Clusters `n` points given their neighbour lists. `min_samples` (≥ 1) sets the core distance
/// (distance to that neighbour); `min_cluster_size` (≥ 2) is the smallest group called a cluster.
pub fn cluster(knn: &[NeighbourList], min_samples: usize, min_cluster_size: usize) -> Clustering {
    let n = knn.len();
    let mcs = min_cluster_size.max(2) as u32;
    let core: Vec<f32> = knn
        .iter()
        .map(|list| {
            list.get(min_samples.max(1) - 1)
                .or(list.last())
                .map_or(f32::INFINITY, |&(_, d)| d)
        })
        .collect();
    let mut edges: Vec<(f32, u32, u32)> = Vec::with_capacity(n * min_samples.max(1));
    for (i, list) in knn.iter().enumerate() {
        for &(j, d) in list {
            if j as usize != i && (j as usize) < n {
                let w = d.max(core[i]).max(core[j as usize]);
                let (a, b) = if (i as u32) < j {
                    (i as u32, j)
                } else {
                    (j, i as u32)
                };
                edges.push((w, a, b));
            }
        }
    }
    edges.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
    edges.dedup_by(|x, y| x.1 == y.1 && x.2 == y.2);

    // Kruskal: every union is a dendrogram node; leaves are 0..n.
    let mut nodes: Vec<Node> = (0..n)
        .map(|_| Node {
            children: None,
            distance: 0.0,
            size: 1,
        })
        .collect();
    let mut parent: Vec<u32> = (0..n as u32).collect();
    let mut top: Vec<u32> = (0..n as u32).collect(); // dendrogram node of each set's root
    fn find(parent: &mut [u32], mut x: u32) -> u32 {
        while parent[x as usize] != x {
            parent[x as usize] = parent[parent[x as usize] as usize];
            x = parent[x as usize];
        }
        x
    }
    for (w, a, b) in edges {
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        if ra == rb {
            continue;
        }
        let (na, nb) = (top[ra as usize], top[rb as usize]);
        let id = nodes.len() as u32;
        nodes.push(Node {
            children: Some((na, nb)),
            distance: w,
            size: nodes[na as usize].size + nodes[nb as usize].size,
        });
        parent[rb as usize] = ra;
        top[ra as usize] = id;
    }
    let mut roots: Vec<u32> = (0..n as u32)
        .filter(|&i| find(&mut parent, i) == i)
        .map(|i| top[i as usize])
        .collect();
    roots.sort_unstable();

    // Condense. A component big enough is a top-level cluster; it is selectable only when it is
    // not the sole one (HDBSCAN never calls all the data one cluster).
    let big: Vec<u32> = roots
        .iter()
        .copied()
        .filter(|&r| nodes[r as usize].size >= mcs)
        .collect();
    let mut clusters: Vec<Cluster> = Vec::new();
    let mut last_cluster: Vec<Option<usize>> = vec![None; n];
    let mut stack: Vec<(u32, usize)> = Vec::new();
    for &root in &big {
        clusters.push(Cluster {
            parent: None,
            birth: 0.0,
            stability: 0.0,
            children: Vec::new(),
            selectable: big.len() > 1,
        });
        stack.push((root, clusters.len() - 1));
    }
    let lambda = |d: f32| 1.0 / f64::from(d).max(1e-12);
    let mut leaves = Vec::new();
    while let Some((node, c)) = stack.pop() {
        let Some((a, b)) = nodes[node as usize].children else {
            // A single point still in a cluster (only when min_cluster_size is 1).
            last_cluster[node as usize] = Some(c);
            continue;
        };
        let l = lambda(nodes[node as usize].distance);
        let gain = l - clusters[c].birth;
        let (sa, sb) = (nodes[a as usize].size, nodes[b as usize].size);
        match (sa >= mcs, sb >= mcs) {
            (true, true) => {
                clusters[c].stability += f64::from(sa + sb) * gain;
                for child in [a, b] {
                    clusters.push(Cluster {
                        parent: Some(c),
                        birth: l,
                        stability: 0.0,
                        children: Vec::new(),
                        selectable: true,
                    });
                    let id = clusters.len() - 1;
                    clusters[c].children.push(id);
                    stack.push((child, id));
                }
            }
            (keep_a, keep_b) => {
                for (child, keep) in [(a, keep_a), (b, keep_b)] {
                    if keep {
                        stack.push((child, c));
                        continue;
                    }
                    leaves.clear();
                    collect_leaves(&nodes, child, &mut leaves);
                    clusters[c].stability += leaves.len() as f64 * gain;
                    for &p in &leaves {
                        last_cluster[p as usize] = Some(c);
                    }
                }
            }
        }
    }

    // Excess of mass, bottom-up: children are always created after their parent.
    let mut selected = vec![false; clusters.len()];
    let mut best = vec![0.0f64; clusters.len()];
    for c in (0..clusters.len()).rev() {
        let below: f64 = clusters[c].children.iter().map(|&k| best[k]).sum();
        if clusters[c].selectable
            && (clusters[c].children.is_empty() || clusters[c].stability >= below)
        {
            selected[c] = true;
            best[c] = clusters[c].stability;
        } else {
            best[c] = below;
        }
    }
    // A selected cluster overrides every selection below it.
    for c in 0..clusters.len() {
        let mut up = clusters[c].parent;
        while let Some(p) = up {
            if selected[p] {
                selected[c] = false;
                break;
            }
            up = clusters[p].parent;
        }
    }
    let mut number = vec![None; clusters.len()];
    let mut stability = Vec::new();
    for c in 0..clusters.len() {
        if selected[c] {
            number[c] = Some(stability.len() as u32);
            stability.push(clusters[c].stability);
        }
    }
    let labels = last_cluster
        .iter()
        .map(|&last| {
            let mut at = last;
            while let Some(c) = at {
                if let Some(k) = number[c] {
                    return Some(k);
                }
                at = clusters[c].parent;
            }
            None
        })
        .collect();
    Clustering { labels, stability }
}

fn collect_leaves(nodes: &[Node], from: u32, out: &mut Vec<u32>) {
    let mut stack = vec![from];
    while let Some(x) = stack.pop() {
        match nodes[x as usize].children {
            Some((a, b)) => {
                stack.push(a);
                stack.push(b);
            }
            None => out.push(x),
        }
    }
}

/// Exact neighbour lists by brute force (rows of `dim` floats), for small sets and tests.
pub fn exact_knn(vectors: &[f32], dim: usize, k: usize) -> Vec<NeighbourList> {
    let n = vectors.len() / dim.max(1);
    (0..n)
        .map(|i| {
            let a = &vectors[i * dim..(i + 1) * dim];
            let mut all: Vec<(u32, f32)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| {
                    let b = &vectors[j * dim..(j + 1) * dim];
                    let d2: f32 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
                    (j as u32, d2.sqrt())
                })
                .collect();
            let k = k.min(all.len());
            if k > 0 && k < all.len() {
                all.select_nth_unstable_by(k - 1, |x, y| x.1.total_cmp(&y.1).then(x.0.cmp(&y.0)));
            }
            all.truncate(k);
            all.sort_by(|x, y| x.1.total_cmp(&y.1).then(x.0.cmp(&y.0)));
            all
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic points: `blobs` Gaussian-ish blobs of `per` points in 2-D, plus `noise`
    /// points spread over a large square.
    fn data(blobs: &[(f32, f32, f32)], per: usize, noise: usize) -> (Vec<f32>, Vec<Option<usize>>) {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f32 / (1u64 << 53) as f32
        };
        let (mut v, mut truth) = (Vec::new(), Vec::new());
        for (b, &(cx, cy, spread)) in blobs.iter().enumerate() {
            for _ in 0..per {
                // Sum of uniforms: roughly normal, bounded.
                let dx = (next() + next() + next() - 1.5) * spread;
                let dy = (next() + next() + next() - 1.5) * spread;
                v.extend([cx + dx, cy + dy]);
                truth.push(Some(b));
            }
        }
        for _ in 0..noise {
            v.extend([next() * 200.0 - 100.0, next() * 200.0 - 100.0]);
            truth.push(None);
        }
        (v, truth)
    }

    #[test]
    fn separated_blobs_are_found_and_scattered_points_are_noise() {
        let (v, truth) = data(
            &[(0.0, 0.0, 2.0), (40.0, 0.0, 2.0), (0.0, 40.0, 4.0)],
            60,
            12,
        );
        let knn = exact_knn(&v, 2, 10);
        let result = cluster(&knn, 5, 10);
        assert_eq!(result.stability.len(), 3, "three clusters");
        for blob in 0..3 {
            let labels: std::collections::HashSet<_> = truth
                .iter()
                .zip(&result.labels)
                .filter(|(t, _)| **t == Some(blob))
                .map(|(_, l)| *l)
                .collect();
            assert_eq!(labels.len(), 1, "blob {blob} is one cluster: {labels:?}");
            assert!(!labels.contains(&None), "blob {blob} is not noise");
        }
        // Scattered points drop out of the blob they hang from once the blob is born, so
        // HDBSCAN labels them with it (at low membership); they must not merge two blobs.
        let distinct: std::collections::HashSet<_> = result.labels.iter().flatten().collect();
        assert_eq!(distinct.len(), 3);
    }

    #[test]
    fn one_blob_is_not_split_and_min_size_hides_small_groups() {
        let (v, _) = data(&[(0.0, 0.0, 3.0)], 80, 0);
        let knn = exact_knn(&v, 2, 10);
        let result = cluster(&knn, 5, 10);
        // All data in one group: HDBSCAN does not call the whole set a cluster, and the blob
        // has no lasting split.
        assert!(result.stability.len() <= 2, "{:?}", result.stability);
        // Two blobs of 8 with min size 10: nothing qualifies.
        let (v, _) = data(&[(0.0, 0.0, 1.0), (50.0, 50.0, 1.0)], 8, 0);
        let knn = exact_knn(&v, 2, 5);
        let result = cluster(&knn, 3, 10);
        assert!(result.labels.iter().all(Option::is_none));
    }

    #[test]
    fn disconnected_components_are_separate_clusters() {
        // k smaller than a blob: the graph has two components, never joined by an edge.
        let (v, truth) = data(&[(0.0, 0.0, 1.0), (1000.0, 1000.0, 1.0)], 30, 0);
        let knn = exact_knn(&v, 2, 5);
        let result = cluster(&knn, 3, 5);
        assert_eq!(result.stability.len(), 2);
        assert_ne!(result.labels[0], result.labels[30]);
        assert!(truth.iter().zip(&result.labels).all(|(_, l)| l.is_some()));
    }
}
