"""YAML for configs: PyYAML's safe loader, made strict where the safe one is silent.

A key written twice is an error (PyYAML keeps the last one without a word), aliases may not
expand into more than MAX_NODES values (a 'billion laughs' file is small on disk but would
exhaust memory once validated or written back out), and nothing nests deeper than MAX_DEPTH
(PyYAML composes recursively: a few thousand brackets would end in a RecursionError, and a few
hundred pass here but not through the config written back). A command-line override is read
by the same loader, with anchors and aliases refused outright: one value needs none.
"""

from __future__ import annotations

import yaml

MAX_NODES = 100_000  # a real config has a few hundred values
MAX_DEPTH = 32  # a real config nests 4 or 5 levels (eval.generation, model.config_overrides.rope_scaling)
MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlRefused(yaml.YAMLError):
    """Valid YAML that a config must not be (duplicate keys, alias bombs, recursion)."""


class StrictLoader(yaml.SafeLoader):
    allow_aliases = True
    depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if not self.allow_aliases and (isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None)):
            raise YamlRefused("anchors (&name) and aliases (*name) are not read here; write the value out")
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise YamlRefused(
                    f"line {event.start_mark.line + 1}: nested too deeply (more than {MAX_DEPTH} levels); "
                    "a config needs far fewer"
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node, deep=False):
        first_line: dict[tuple, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == MERGE_TAG:
                continue  # `<<: *base` merges may override, as YAML intends
            key = (key_node.tag, key_node.value)
            line = key_node.start_mark.line + 1
            if key in first_line:
                raise YamlRefused(
                    f"key '{key_node.value}' is written twice, on lines {first_line[key]} and "
                    f"{line}; keep one"
                )
            first_line[key] = line
        return super().construct_mapping(node, deep=deep)

    def get_single_data(self):
        node = self.get_single_node()
        if node is None:
            return None
        _expanded_size(node, {}, set())
        return self.construct_document(node)


def load_yaml_text(text: str, *, aliases: bool = True):
    """`aliases=False` for a command-line override: anchors and aliases are refused."""
    loader = StrictLoader(text)
    loader.allow_aliases = aliases
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _expanded_size(node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """Values the document holds once every alias is expanded (memoised: linear in the file)."""
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in open_nodes:
        raise YamlRefused(f"line {node.start_mark.line + 1}: an alias refers to itself; remove the loop")
    open_nodes.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    else:
        children = []
    size = 1 + sum(_expanded_size(child, sizes, open_nodes) for child in children)
    if size > MAX_NODES:
        raise YamlRefused(
            f"aliases (*name) expand to more than {MAX_NODES} values; a config needs far fewer, "
            "write the values out"
        )
    open_nodes.discard(id(node))
    sizes[id(node)] = size
    return size
