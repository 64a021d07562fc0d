"""The simulated network: pool, delays, partitions, holds (DESIGN: Network)."""

import networkx as nx
from hypothesis import given
from hypothesis import strategies as st

from virtraft.sim.network import Network


def test_messages_wait_for_their_delay():
    net = Network([1, 2])
    net.send(1, 2, "late", now_ms=0, delay_ms=50)
    net.send(1, 2, "now", now_ms=0, delay_ms=0)
    assert [e.message for e in net.pool] == ["now"]
    net.advance(49)
    assert len(net.pool) == 1
    net.advance(50)
    assert [e.message for e in net.pool] == ["now", "late"]


def test_a_down_link_loses_messages_in_flight_and_new_ones():
    net = Network([1, 2, 3])
    net.send(1, 2, "a", 0, 0)
    net.send(2, 1, "b", 0, 0)
    net.send(1, 3, "c", 0, 30)
    net.set_partition(down=[(1, 2), (1, 3)])
    assert [e.message for e in net.pool] == ["b"]
    net.send(1, 2, "d", 0, 0)
    net.advance(100)
    assert [e.message for e in net.pool] == ["b"]
    assert net.stats.lost_on_cut_links == 3


def test_a_held_link_keeps_messages_until_heal():
    net = Network([1, 2])
    net.set_partition(down=[], held=[(1, 2)])
    net.send(1, 2, "kept", 0, 0)
    net.send(2, 1, "free", 0, 0)
    assert [e.message for e in net.pool] == ["free"]
    net.heal()
    assert [e.message for e in net.pool] == ["free", "kept"]


def test_duplicate_makes_a_second_envelope():
    net = Network([1, 2])
    net.send(1, 2, "x", 0, 0)
    copy = net.duplicate(net.pool[0])
    assert len(net.pool) == 2 and copy is not net.pool[0]
    net.take(net.pool[0])
    assert net.pool == [copy]


def test_find_by_content_digest_also_sees_delayed_messages():
    net = Network([1, 2])
    net.send(1, 2, "x", 0, 100)
    env = net.find(1, 2, net._future[0][2].key)
    assert env is not None and env.message == "x"
    net.take(env)
    assert net.in_flight == 0


def test_find_newest_takes_the_latest_of_a_type_on_the_link():
    """Shrinking's fallback: the newest message of the type, delayed or not,
    never one of another type or on another link."""
    net = Network([1, 2, 3])
    net.send(1, 2, "old", 0, 0)
    net.send(1, 2, "delayed", 0, 100)
    net.send(1, 2, 7, 0, 0)  # another type
    net.send(1, 3, "other link", 0, 0)
    assert net.find_newest(1, 2, "str").message == "delayed"
    net.take(net.find_newest(1, 2, "str"))
    assert net.find_newest(1, 2, "str").message == "old"
    assert net.find_newest(1, 2, "int").message == 7
    assert net.find_newest(2, 1, "str") is None
    net.send(1, 2, "new", 0, 0)
    net.duplicate(net.find_newest(1, 2, "str"))  # a copy of "new"...
    net.duplicate(net.pool[0])  # ...and one of "old": as old as "old" itself
    assert net.find_newest(1, 2, "str").message == "new"


_IDS = st.integers(0, 6)
_LINKS = st.lists(st.tuples(_IDS, _IDS).filter(lambda link: link[0] != link[1]), max_size=20)


@given(
    st.sets(_IDS, min_size=1),
    _LINKS,
    _LINKS,
    st.sets(_IDS, max_size=2),
    st.lists(_IDS, min_size=1, max_size=7),
)
def test_link_queries_answer_what_a_graph_of_the_up_links_answers(
    nodes: set[int],
    down: list[tuple[int, int]],
    held: list[tuple[int, int]],
    forgotten: set[int],
    voters: list[int],
) -> None:
    """The network keeps only the links down and held; a directed graph of
    every up link between present servers is the model it must agree with."""
    net = Network(sorted(nodes))
    net.set_partition(down, held)
    for node in sorted(forgotten):
        net.remove_node(node)
    present = nodes - forgotten
    graph = nx.DiGraph()
    graph.add_nodes_from(present)
    cut = set(down) | set(held)
    graph.add_edges_from((a, b) for a in present for b in present if a != b and (a, b) not in cut)
    for a in range(-1, 8):
        for b in range(-1, 8):
            assert net.has_link(a, b) == graph.has_edge(a, b), (a, b)
    voters = sorted(set(voters))
    both_ways = graph.subgraph(voters).to_undirected(reciprocal=True)
    need = len(voters) // 2 + 1
    assert net.connected_majority(voters) == any(d + 1 >= need for _n, d in both_ways.degree())


def test_connected_majority_is_a_graph_query():
    net = Network([1, 2, 3, 4, 5])
    assert net.connected_majority([1, 2, 3, 4, 5])
    # Partial connectivity: 3 sees everyone, the others see only 3; only 3 can lead.
    down = [(a, b) for a in (1, 2, 4, 5) for b in (1, 2, 4, 5) if a != b]
    net.set_partition(down)
    assert net.connected_majority([1, 2, 3, 4, 5])
    net.set_partition(down + [(3, 1), (3, 2), (3, 4)])
    assert not net.connected_majority([1, 2, 3, 4, 5])
    net.heal()
    net.set_partition(
        [(a, b) for a in (1, 2) for b in (3, 4, 5)] + [(b, a) for a in (1, 2) for b in (3, 4, 5)]
    )
    assert net.connected_majority([1, 2, 3, 4, 5])  # 3, 4, 5 together
    net.heal()
    groups = {1: 0, 2: 0, 3: 1, 4: 1, 5: 2}
    net.set_partition([(a, b) for a in groups for b in groups if groups[a] != groups[b]])
    assert not net.connected_majority([1, 2, 3, 4, 5])


def test_a_forgotten_node_loses_what_was_on_its_way_and_leaves_the_partition():
    """A server gone for good: messages to it are lost (delayed and held ones
    too), what it sent is still delivered, and no cut names it any more."""
    net = Network([1, 2, 3])
    net.set_partition(down=[(3, 1)], held=[(2, 3), (3, 2)])
    net.send(1, 3, "to-3", 0, 0)
    net.send(1, 3, "to-3-late", 0, 40)
    net.send(2, 3, "to-3-held", 0, 0)
    net.send(3, 2, "from-3-held", 0, 0)
    net.send(3, 2, "from-3", 0, 0)
    net.send(1, 2, "other", 0, 0)
    net.remove_node(3)
    net.advance(100)
    assert sorted(e.message for e in net.pool) == ["from-3", "from-3-held", "other"]
    assert net.stats.lost_on_cut_links == 3  # the three on their way to node 3
    assert not net.partitioned
    assert 3 not in net.nodes
