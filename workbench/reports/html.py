"""Self-contained HTML from an executed notebook: code hidden, plotly figures interactive, viewable offline.

nbconvert's ``lab`` template links require.js, MathJax and mermaid from CDNs (and the widget manager when widget
state is stored). A report must open on a laptop with no network, so :func:`notebook_to_html` renders with a
template that extends ``lab`` and leaves those script tags out, and drops the MathJax CDN tag plotly's notebook
renderer puts into every figure's output. Plotly figures survive because report notebooks
use the ``plotly_mimetype+notebook`` renderer (:func:`workbench.reports.setup_report_rendering`): the first
``fig.show()`` puts the full plotly.js source into the output as an inline ``<script>``, and each figure's
``text/html`` output draws itself with ``window.Plotly``. :func:`html_is_self_contained` checks a page for this.
LaTeX in markdown is shown as written (MathJax would need the network).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
"""

# plotly's notebook renderer adds a MathJax <script src=cdn> to every figure's HTML output (for LaTeX in labels).
_PLOTLY_MATHJAX_CDN = re.compile(
    r"<script\s+src=[\"']https://cdn[^\"']*/mathjax/[^\"']*[\"']\s*>\s*</script>", re.IGNORECASE)
_REMOTE_SCRIPT = re.compile(r"<script\b[^>]*\bsrc\s*=\s*[\"']?(?:https?:)?//", re.IGNORECASE)
_REMOTE_IMPORT = re.compile(r"""\bimport\s*\(?\s*["'](?:https?:)?//""", re.IGNORECASE)


def notebook_to_html(nb: nbformat.NotebookNode | str | Path, *, exclude_input: bool = True,
                     title: str | None = None) -> str:
    """HTML of a notebook (a node or a path), input cells hidden by default, with no remote scripts."""
    import jinja2
    from nbconvert import HTMLExporter

    if not isinstance(nb, nbformat.NotebookNode):
        nb = nbformat.read(str(nb), as_version=4)
    exporter = HTMLExporter(
        template_name="lab",
        extra_loaders=[jinja2.DictLoader({"workbench_report.html.j2": _TEMPLATE})],
        template_file="workbench_report.html.j2",
        exclude_input=exclude_input,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=True,
    )
    resources = {"metadata": {"name": title}} if title else None
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    return _PLOTLY_MATHJAX_CDN.sub("", body)


def remote_scripts(html: str) -> list[str]:
    """Script tags or module imports in ``html`` that would fetch code from the network."""
    found = [m.group(0) for m in _REMOTE_SCRIPT.finditer(html)]
    found += [m.group(0) for m in _REMOTE_IMPORT.finditer(html)]
    return found


def has_embedded_plotlyjs(html: str) -> bool:
    """True when the page carries the plotly.js library itself (not a link to it)."""
    # plotly.js's bundle starts with a banner naming the library and its version, and defines Plotly.newPlot.
    return bool(re.search(r"plotly\.js v\d+\.\d+\.\d+", html)) and "newPlot" in html and len(html) > 1_000_000


def html_is_self_contained(html: str) -> bool:
    """No remote scripts, and plotly.js embedded if the page draws any plotly figure."""
    draws_plotly = "Plotly.newPlot" in html or "plotly-graph-div" in html
    return not remote_scripts(html) and (not draws_plotly or has_embedded_plotlyjs(html))


__all__ = ["notebook_to_html", "remote_scripts", "has_embedded_plotlyjs", "html_is_self_contained"]
