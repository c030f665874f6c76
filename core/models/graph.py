"""A flat functional model's graph by layer name, and replays of parts of it on new inputs.

A replay calls the model's own layer objects, so training the replayed part trains the model's weights; nothing is
copied. Used to train only what learns: the layers above a fine-tuning cut, or a compressed head.
"""
from __future__ import annotations


def layer_graph(model) -> tuple[list[str], dict[str, list[str]]]:
    """Layer names in order and, for each, the names of the layers it reads (one call per layer in these models)."""
    cfg = model.get_config()
    order, inbound = [], {}
    for layer in cfg["layers"]:
        nodes = layer["inbound_nodes"]
        if len(nodes) > 1:
            raise ValueError(f"layer {layer['name']} is called more than once in the model")
        reads = [n[0] for n in nodes[0]] if nodes else []
        if nodes and any(n[3] for n in nodes[0]):
            raise ValueError(f"layer {layer['name']} is called with keyword arguments")
        order.append(layer["name"])
        inbound[layer["name"]] = reads
    return order, inbound


def replay(model, names: list[str], inbound: dict[str, list[str]], tensors: dict) -> dict:
    """Call the layers `names` (in order) on `tensors` (name -> tensor, extended in place and returned)."""
    for name in names:
        layer = model.get_layer(name)
        ins = [tensors[r] for r in inbound[name]]
        tensors[name] = layer(ins if len(ins) > 1 else ins[0])
    return tensors


def model_above(model, cut: str, name: str = "above"):
    """Model(the output of layer `cut` -> the model's output) over the same layer objects. `cut` must be the only
    layer below it that the layers above read (ValueError otherwise)."""
    from core.tfenv import keras
    order, inbound = layer_graph(model)
    c = order.index(cut)
    above = order[c + 1:]
    below = {r for n in above for r in inbound[n]} - set(above)
    if below != {cut}:
        raise ValueError(f"the layers above {cut} also read {sorted(below - {cut})}")
    inp = keras.Input(model.get_layer(cut).output_shape[1:], name=f"{cut}_in")
    return keras.Model(inp, replay(model, above, inbound, {cut: inp})[order[-1]], name=name)
