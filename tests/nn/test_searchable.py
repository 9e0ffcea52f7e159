from emmkgr_pyg.graph.emmkg import build_emmkg
from emmkgr_pyg.graph.interaction import InteractionGraph
from emmkgr_pyg.graph.knn import KNNBuilder
from emmkgr_pyg.nn.emmkgr import EMMKGR
from emmkgr_pyg.nn.searchable import SearchableEMMKGR


def test_searchable_is_emmkgr_with_the_alignment_term_on(tiny_dataset):
    inter = InteractionGraph.from_dataset(tiny_dataset)
    kg = build_emmkg(tiny_dataset, top_n=2, knn=KNNBuilder(progress=False))
    model = SearchableEMMKGR(inter, kg, dim=4)
    assert isinstance(model, EMMKGR) and model.align_weight == 0.1
    assert SearchableEMMKGR(inter, kg, dim=4, align_weight=0.0).align_weight == 0.0
