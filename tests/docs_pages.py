"""What the docs site shows, checked without Quarto: nbdev's docs processing of every notebook, and the results
pages' saved outputs against a fresh execution on the committed data.

    python tests/docs_pages.py --save nbs/micro_results.ipynb nbs/paper_results.ipynb   # re-execute and save pages
    python tests/docs_pages.py                                                         # report stale outputs

(`nbdev-clean` afterwards.) `tests/test_docs.py` runs the same checks under pytest."""
import html, json, os, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT/'nbs'
RESULTS_PAGES = ['micro_results.ipynb', 'paper_results.ipynb', '19_towers.ipynb']
SKIP_FLAGS = ('slow', 'gpu', 'notest')   # the cells the default `nbdev-test` skips (tst_flags)

# -------------------------------------------------------------------------------------------------------------
# Results pages: saved outputs == a fresh execution
# -------------------------------------------------------------------------------------------------------------
def _flags(src: str) -> set:
    return {w for l in src.splitlines() if l.startswith('#|') for w in l[2:].split()}

def _shown(cell) -> list[str]:
    "What a code cell shows a reader, as text: streams, markdown, HTML and plain text (not an object's repr, not images)."
    out = []
    for o in cell.get('outputs', []):
        if o.get('output_type') == 'stream': out.append(''.join(o['text']))
        elif o.get('output_type') == 'error': out.append(f"ERROR {o.get('ename')}: {o.get('evalue')}")
        for k in ('text/markdown', 'text/html', 'text/plain'):
            v = ''.join(o.get('data', {}).get(k, ''))
            if v and not (k == 'text/plain' and re.fullmatch(r'<[^>]+ object( at 0x[0-9a-f]+)?>|<Figure size [^>]*>', v.strip())):
                out.append(f'{k}: {v}')
    return out

def execute_page(path: Path, save: bool = False) -> dict:
    "Execute a page as `nbdev-test` does (flagged cells skipped, in its own folder); return the new notebook."
    from fastcore.nbio import read_nb, write_nb
    from execnb.shell import CaptureShell
    from fastcore.xtras import working_directory
    path = Path(path).resolve()
    nb = read_nb(path)
    skip = lambda cell: cell.cell_type == 'code' and bool(_flags(cell.source) & set(SKIP_FLAGS))
    os.environ.setdefault('LDIFS_QUIET', '1')
    with working_directory(path.parent):
        CaptureShell(path).run_all(nb, exc_stop=True, preproc=skip)
    if save: write_nb(nb, path)
    return nb

def stale_outputs(path: Path) -> list[str]:
    "The code cells of a committed page whose saved outputs differ from a fresh execution (empty: the page is fresh)."
    saved = json.loads(Path(path).read_text())['cells']
    fresh = execute_page(path)['cells']
    assert len(saved) == len(fresh)
    diffs = []
    for i, (a, b) in enumerate(zip(saved, fresh)):
        if a['cell_type'] != 'code' or _flags(''.join(a['source'])) & set(SKIP_FLAGS): continue
        if _shown(a) != _shown(b):
            diffs.append(f"{Path(path).name} cell {i} ({''.join(a['source']).splitlines()[0][:60]!r}):\n"
                         f"  saved: {_shown(a)!r:.400}\n  fresh: {_shown(b)!r:.400}")
    return diffs

# -------------------------------------------------------------------------------------------------------------
# nbdev's docs processing: nothing lost, unique pages, no raw HTML by accident
# -------------------------------------------------------------------------------------------------------------
def documented_notebooks(nbs: Path = NBS) -> list[Path]:
    return sorted(p for p in nbs.glob('*.ipynb') if not p.name.startswith('_'))

def page_name(src: Path) -> str:
    "The page nbdev makes of a notebook: its name without the number prefix (`09_train.ipynb` -> `train.html`)."
    return re.sub(r'^\d+[a-z]?_', '', src.stem) + '.html'

def _cells(path: Path) -> list[dict]:
    return json.loads(Path(path).read_text())['cells']

def _norm(s: str) -> str:
    "Text as a reader sees it, for comparison: links reduced to their text, markup and whitespace collapsed."
    s = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', s)          # nbdev turns `name` into [`name`](url)
    s = s.replace('`', '').replace('*', '')
    s = s.translate(str.maketrans({'’': "'", '‘': "'", '“': '"', '”': '"', '…': '...'}))   # pandoc's smart quotes
    s = s.replace('---', '—').replace('--', '–')
    return ' '.join(s.split())

def paragraphs(md: str) -> list[str]:
    return [p.strip() for p in re.split(r'\n\s*\n', md) if p.strip()]

def front_matter(path: Path) -> dict:
    "The YAML front matter nbdev wrote into a processed notebook's first raw cell."
    import yaml
    c = _cells(path)[0]
    src = ''.join(c['source'])
    assert c['cell_type'] == 'raw' and src.startswith('---'), f'{path.name}: no front matter'
    return yaml.safe_load(src.strip().strip('-')) or {}

def lost_text(src: Path, proc: Path) -> list[str]:
    "Paragraphs of `src`'s markdown (title and description included) that are missing from its processed notebook."
    cells = _cells(src)
    fm = front_matter(proc)
    kept = _norm(' '.join([str(fm.get('title', '')), str(fm.get('description', ''))] +
                          [''.join(c['source']) for c in _cells(proc) if c['cell_type'] == 'markdown']))
    lost = []
    for i, c in enumerate(cells):
        if c['cell_type'] != 'markdown': continue
        for p in paragraphs(''.join(c['source'])):
            if i == 0 and re.fullmatch(r'(- [\w-]+: .*\n?)+', p): continue   # nbdev front-matter options (`- key: value`)
            p = re.sub(r'^#+\s+', '', re.sub(r'^>\s*', '', p))    # a title's '#', a description's '>'
            if _norm(p) not in kept: lost.append(f'{src.name} cell {i}: {p[:100]!r}')
    return lost

HTML_TAGS = {'a', 'b', 'i', 'u', 'em', 'strong', 'br', 'p', 'div', 'span', 'sup', 'sub', 'img', 'code', 'pre', 'kbd',
             'details', 'summary', 'table', 'thead', 'tbody', 'tr', 'th', 'td', 'ul', 'ol', 'li', 'hr', 'small', 'style'}

def raw_html(md: str) -> list[str]:
    "Things in markdown that pandoc would read as raw HTML (an unknown `<tag>`) or as a stray fenced div (`:::`)."
    md = re.sub(r'(?ms)^(\s*)(```|~~~).*?^\1\2', '', md)            # fenced code blocks
    md = re.sub(r'(`+)(?:(?!\1).)+?\1', '', md)                      # inline code spans
    md = re.sub(r'(?s)<!--.*?-->', '', md)
    bad = [m.group(0) for m in re.finditer(r'</?([A-Za-z][\w-]*)[^<>\n]*>', md) if m.group(1).lower() not in HTML_TAGS]
    opens = len(re.findall(r'(?m)^:::+\s*\{', md)) + len(re.findall(r'(?m)^:::+\s*[\w.-]+\s*$', md))
    closes = len(re.findall(r'(?m)^:::+\s*$', md))
    if opens != closes: bad.append(f'{opens} fenced div(s) opened, {closes} closed')
    return bad

EMOJI = set('✅❌❎✔✖⭐⚠❗❓')   # need an emoji font that many machines lack: they render as boxes

def emoji(md: str) -> list[str]:
    "Characters that need an emoji font (many machines render them as empty boxes)."
    return sorted({ch for ch in md if ch in EMOJI or 0x1F000 <= ord(ch) <= 0x1FAFF})

def markdown_seen(path: Path) -> list[tuple[str, str]]:
    "Every piece of markdown a processed notebook gives Quarto: markdown cells and markdown outputs (`show_doc`, tables)."
    out = []
    for i, c in enumerate(_cells(path)):
        if c['cell_type'] == 'markdown': out.append((f'{path.name} cell {i}', ''.join(c['source'])))
        for o in c.get('outputs', []):
            md = ''.join(o.get('data', {}).get('text/markdown', ''))
            if md: out.append((f'{path.name} cell {i} output', md))
    return out

def check_processed(nbs: Path, proc: Path) -> list[str]:
    "Everything that would go wrong on the site, from nbdev's processed notebooks in `proc`."
    problems, names, numbers = [], {}, {}
    for src in documented_notebooks(nbs):
        num = re.match(r'(\d+[a-z]?)_', src.name)
        if num and num.group(1) in numbers: problems.append(f'{src.name} and {numbers[num.group(1)]} share the number {num.group(1)}')
        if num: numbers[num.group(1)] = src.name
        p = proc/src.name
        if not p.exists(): problems.append(f'{src.name}: not processed'); continue
        out = front_matter(p).get('output-file') or page_name(src)
        if out in names: problems.append(f'{src.name} and {names[out]} both become {out}')
        names[out] = src.name
        problems += lost_text(src, p)
        problems += [f'{where}: {b!r} would be read as raw HTML' for where, md in markdown_seen(p) for b in raw_html(md)]
        problems += [f'{where}: {e!r} needs an emoji font; use text' for where, md in markdown_seen(p) for e in emoji(md)]
    return problems

# -------------------------------------------------------------------------------------------------------------
# The rendered site (needs Quarto): every page's opening paragraph and images are there
# -------------------------------------------------------------------------------------------------------------
def html_text(page: str) -> str:
    body = re.sub(r'(?s)<(script|style|head)\b.*?</\1>', ' ', page)
    return ' '.join(html.unescape(re.sub(r'<[^>]+>', ' ', body)).split())

def opening_paragraph(src: Path) -> str:
    "The first sentence of prose after a notebook's title and description: what a reader must see first."
    for i, c in enumerate(_cells(src)):
        if c['cell_type'] != 'markdown': continue
        text = ''.join(c['source'])
        if i == 0: text = '\n'.join(l for l in text.splitlines() if not l.startswith(('# ', '>', '- ')))
        for p in paragraphs(text):
            if p.startswith(('#', '```', '|', '!', '<', '-', '$', '>')): continue
            first = re.split(r'(?<=[.:;])\s', p, maxsplit=1)[0]
            return _norm(re.sub(r'\$[^$]*\$', '', first))[:80]
    return ''

def _squash(s: str) -> str:
    "Text without markup or any whitespace: tags become spaces in HTML, so spacing cannot be compared."
    return re.sub(r'\s+', '', _norm(s))

def check_rendered(nbs: Path, site: Path) -> list[str]:
    problems = []
    for src in documented_notebooks(nbs):
        fm_out = page_name(src)
        page = site/fm_out
        if not page.exists(): problems.append(f'{src.name}: no {fm_out}'); continue
        text = html_text(page.read_text())
        want = opening_paragraph(src)
        if want and _squash(want) not in _squash(text): problems.append(f'{fm_out}: opening paragraph {want!r} missing')
        for img in re.findall(r'<img[^>]+src="([^"]+)"', page.read_text()):
            if not img.startswith(('http', 'data:')) and not (page.parent/img).exists():
                problems.append(f'{fm_out}: image {img} missing')
    return problems


if __name__ == '__main__':
    args = sys.argv[1:]
    save = '--save' in args
    pages = [Path(a) for a in args if a != '--save'] or [NBS/p for p in RESULTS_PAGES]
    for p in pages:
        if save: execute_page(p, save=True); print(f'{p}: re-executed and saved (run nbdev-clean)')
        else: print('\n'.join(stale_outputs(p)) or f'{p}: fresh')
