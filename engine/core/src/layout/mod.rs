//! A layered (Sugiyama-style) drawing of the step graph, left to right:
//! layers by longest path, long edges broken by virtual nodes, crossings
//! reduced by barycenter sweeps, then coordinates. The dashboard only draws
//! what this computes, so a browser never lays out thousands of nodes.

mod groups;

pub use groups::{layered_grouped, GroupedLayout, GROUP_MIN};

use crate::dag::Dag;

/// Size of a node box and the gaps between boxes, in drawing units (px).
pub const NODE_WIDTH: f64 = 180.0;
pub const NODE_HEIGHT: f64 = 40.0;
const LAYER_GAP: f64 = 70.0;
const ROW_GAP: f64 = 16.0;
/// Barycenter sweeps (down and up count as one); more rarely changes a thing.
const SWEEPS: usize = 4;

/// Where each step sits and how each edge runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// One per step, in step order.
    pub nodes: Vec<NodePlace>,
    pub edges: Vec<EdgePath>,
    pub width: f64,
    pub height: f64,
}

/// A step's box: top-left corner and its layer (column).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodePlace {
    pub layer: usize,
    pub x: f64,
    pub y: f64,
}

/// From a need to the step that needs it, through the points of the layers
/// it crosses.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgePath {
    pub from: usize,
    pub to: usize,
    pub points: Vec<(f64, f64)>,
}

/// A chain of one edge through the layers: real node, virtual nodes, real node.
struct Chain {
    from: usize,
    to: usize,
    /// Indices into the slot table, one per layer from `from`'s to `to`'s.
    slots: Vec<usize>,
}

/// Lays out `dag`. Steps in a cycle (invalid workflows) go one layer past
/// the rest, so even a broken workflow draws.
pub fn layered(dag: &Dag) -> Layout {
    let n = dag.len();
    let layer = layers(dag);
    let layer_count = layer.iter().max().map_or(0, |m| m + 1);

    // Slots: real nodes first (slot i is step i), then virtual ones.
    let mut slot_layer: Vec<usize> = layer.clone();
    let mut chains = Vec::new();
    for to in 0..n {
        let mut needs: Vec<usize> = dag.needs(to).collect();
        needs.sort_unstable();
        for from in needs {
            let mut slots = vec![from];
            // Edges into a cycle may point backwards; draw them straight.
            if layer[from] < layer[to] {
                for l in layer[from] + 1..layer[to] {
                    slots.push(slot_layer.len());
                    slot_layer.push(l);
                }
            }
            slots.push(to);
            chains.push(Chain { from, to, slots });
        }
    }

    // Neighbours of each slot in the layer before and after.
    let mut before: Vec<Vec<usize>> = vec![Vec::new(); slot_layer.len()];
    let mut after: Vec<Vec<usize>> = vec![Vec::new(); slot_layer.len()];
    for chain in &chains {
        for pair in chain.slots.windows(2) {
            if slot_layer[pair[0]] < slot_layer[pair[1]] {
                after[pair[0]].push(pair[1]);
                before[pair[1]].push(pair[0]);
            }
        }
    }

    // Initial order: file order for steps, virtual nodes after them.
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); layer_count];
    for (slot, &l) in slot_layer.iter().enumerate() {
        rows[l].push(slot);
    }
    let mut position = vec![0usize; slot_layer.len()];
    let place = |rows: &Vec<Vec<usize>>, position: &mut Vec<usize>| {
        for row in rows {
            for (p, &s) in row.iter().enumerate() {
                position[s] = p;
            }
        }
    };
    place(&rows, &mut position);
    for _ in 0..SWEEPS {
        for row in rows.iter_mut().skip(1) {
            order_by_barycenter(row, &before, &mut position);
        }
        for row in rows.iter_mut().rev().skip(1) {
            order_by_barycenter(row, &after, &mut position);
        }
    }

    // Coordinates: columns by layer, rows centred on the tallest layer.
    let tallest = rows.iter().map(Vec::len).max().unwrap_or(0);
    let pitch = NODE_HEIGHT + ROW_GAP;
    let mut xy = vec![(0.0, 0.0); slot_layer.len()];
    for (l, row) in rows.iter().enumerate() {
        let offset = (tallest - row.len()) as f64 * pitch / 2.0;
        for (p, &s) in row.iter().enumerate() {
            xy[s] = (
                l as f64 * (NODE_WIDTH + LAYER_GAP),
                offset + p as f64 * pitch,
            );
        }
    }
    let nodes = (0..n)
        .map(|i| NodePlace {
            layer: layer[i],
            x: xy[i].0,
            y: xy[i].1,
        })
        .collect();
    let mid = NODE_HEIGHT / 2.0;
    let edges = chains
        .into_iter()
        .map(|chain| {
            let last = chain.slots.len() - 1;
            let points = chain
                .slots
                .iter()
                .enumerate()
                .map(|(k, &s)| {
                    let (x, y) = xy[s];
                    match k {
                        0 => (x + NODE_WIDTH, y + mid),
                        k if k == last => (x, y + mid),
                        _ => (x + NODE_WIDTH / 2.0, y + mid),
                    }
                })
                .collect();
            EdgePath {
                from: chain.from,
                to: chain.to,
                points,
            }
        })
        .collect();
    Layout {
        nodes,
        edges,
        width: span(layer_count, NODE_WIDTH, LAYER_GAP),
        height: span(tallest, NODE_HEIGHT, ROW_GAP),
    }
}

/// Length of `count` boxes of `size` with `gap` between them.
fn span(count: usize, size: f64, gap: f64) -> f64 {
    if count == 0 {
        0.0
    } else {
        count as f64 * (size + gap) - gap
    }
}

/// Longest-path layers: a step sits one past its deepest need.
fn layers(dag: &Dag) -> Vec<usize> {
    let n = dag.len();
    let mut layer = vec![0usize; n];
    let mut indegree: Vec<usize> = (0..n).map(|i| dag.needs(i).count()).collect();
    let mut ready: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut done = vec![false; n];
    while let Some(s) = ready.pop() {
        done[s] = true;
        for d in dag.dependents(s) {
            layer[d] = layer[d].max(layer[s] + 1);
            indegree[d] -= 1;
            if indegree[d] == 0 {
                ready.push(d);
            }
        }
    }
    let past = (0..n)
        .filter(|&i| done[i])
        .map(|i| layer[i] + 1)
        .max()
        .unwrap_or(0);
    for (i, l) in layer.iter_mut().enumerate() {
        if !done[i] {
            *l = past;
        }
    }
    layer
}

/// Sorts one row by the mean position of each slot's neighbours in the
/// fixed adjacent row; slots without neighbours keep their place.
fn order_by_barycenter(row: &mut [usize], neighbours: &[Vec<usize>], position: &mut [usize]) {
    let mut keyed: Vec<(f64, usize)> = row
        .iter()
        .map(|&s| {
            let ns = &neighbours[s];
            let key = if ns.is_empty() {
                position[s] as f64
            } else {
                ns.iter().map(|&m| position[m] as f64).sum::<f64>() / ns.len() as f64
            };
            (key, s)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (p, (_, s)) in keyed.into_iter().enumerate() {
        row[p] = s;
        position[s] = p;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dag(edges: &[(&'static str, &[&'static str])]) -> Dag {
        Dag::new(edges.iter().map(|(id, needs)| (*id, needs.to_vec())))
    }

    /// Edge segments between adjacent layers that cross each other.
    fn crossings(layout: &Layout) -> usize {
        let segments: Vec<((f64, f64), (f64, f64))> = layout
            .edges
            .iter()
            .flat_map(|e| {
                e.points
                    .windows(2)
                    .map(|w| (w[0], w[1]))
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut count = 0;
        for (i, a) in segments.iter().enumerate() {
            for b in &segments[i + 1..] {
                let same_span = (a.0 .0 - b.0 .0).abs() < 1.0 && (a.1 .0 - b.1 .0).abs() < 1.0;
                if same_span && (a.0 .1 - b.0 .1) * (a.1 .1 - b.1 .1) < 0.0 {
                    count += 1;
                }
            }
        }
        count
    }

    #[test]
    fn layers_follow_the_longest_path() {
        let d = dag(&[("a", &[]), ("b", &["a"]), ("c", &["b"]), ("d", &["a", "c"])]);
        let l = layered(&d);
        let layers: Vec<usize> = l.nodes.iter().map(|n| n.layer).collect();
        assert_eq!(layers, vec![0, 1, 2, 3]);
        // a -> d spans three layers: two virtual points between its ends.
        let long = l.edges.iter().find(|e| e.from == 0 && e.to == 3).unwrap();
        assert_eq!(long.points.len(), 4);
        assert!(l.nodes.windows(2).all(|w| w[0].x < w[1].x));
    }

    #[test]
    fn barycenter_untangles_a_crossed_pair() {
        // In file order, a1->b2 and a2->b1 cross; the sweeps must undo it.
        let d = dag(&[("a1", &[]), ("a2", &[]), ("b2", &["a2"]), ("b1", &["a1"])]);
        let l = layered(&d);
        assert_eq!(crossings(&l), 0, "{l:?}");
    }

    #[test]
    fn no_two_nodes_overlap_and_the_box_holds_them_all() {
        let mut edges: Vec<(&'static str, Vec<&'static str>)> = vec![("root", vec![])];
        let names: Vec<&'static str> = (0..50)
            .map(|i| &*Box::leak(format!("s{i}").into_boxed_str()))
            .collect();
        for (i, name) in names.iter().enumerate() {
            edges.push((name, vec![if i % 3 == 0 { "root" } else { names[i - 1] }]));
        }
        let d = Dag::new(edges.iter().map(|(a, b)| (*a, b.clone())));
        let l = layered(&d);
        for (i, a) in l.nodes.iter().enumerate() {
            assert!(a.x >= 0.0 && a.y >= 0.0);
            assert!(a.x + NODE_WIDTH <= l.width + 0.5 && a.y + NODE_HEIGHT <= l.height + 0.5);
            for b in &l.nodes[i + 1..] {
                let apart = (a.x - b.x).abs() >= NODE_WIDTH || (a.y - b.y).abs() >= NODE_HEIGHT;
                assert!(apart, "{a:?} overlaps {b:?}");
            }
        }
    }

    #[test]
    fn a_cycle_still_draws() {
        let d = dag(&[("a", &[]), ("b", &["a", "c"]), ("c", &["b"])]);
        let l = layered(&d);
        assert_eq!(l.nodes.len(), 3);
        assert_eq!(l.nodes[1].layer, 1);
        assert_eq!(l.nodes[2].layer, 1);
        assert_eq!(l.edges.len(), 3);
    }

    #[test]
    fn empty_graph() {
        let l = layered(&Dag::new(std::iter::empty()));
        assert!(l.nodes.is_empty() && l.width == 0.0 && l.height == 0.0);
    }
}
