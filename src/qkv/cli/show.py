"""``qkv show "TEXT"``: attention maps of every layer and head, as a PNG, an offline HTML
viewer or a colour heatmap in the terminal."""

from __future__ import annotations

import argparse
from pathlib import Path

from qkv.cli.main import CliError
from qkv.cli.vocab import add_strict_vocab_argument


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from qkv.viz.model_source import add_color_argument, add_model_argument

    parser = subparsers.add_parser(
        "show",
        help="draw the attention maps of a text (PNG grid, HTML viewer or terminal heatmap)",
        description="Run TEXT through the model and draw its attention. --out FILE.png writes "
        "one figure: a layers × heads grid of small maps with one large labelled map of "
        "--layer/--head (or of the attention rollout with --rollout) beside it. --out "
        "FILE.html writes the offline interactive viewer. --terminal prints a colour heatmap "
        "of one head and the top-k tokens each query attends to.",
    )
    parser.add_argument("text", help="the input text")
    add_model_argument(parser)
    parser.add_argument("--out", metavar="FILE", help="output file: .png or .html")
    parser.add_argument(
        "--terminal", action="store_true", help="print a heatmap of one head in the terminal"
    )
    parser.add_argument("--layer", type=int, default=0, help="layer of the large map (default 0)")
    parser.add_argument("--head", type=int, default=0, help="head of the large map (default 0)")
    parser.add_argument(
        "--rollout",
        action="store_true",
        help="show the attention rollout (Abnar & Zuidema) instead of one head",
    )
    parser.add_argument(
        "--top-k", type=int, default=3, help="keys listed per query with --terminal (default 3)"
    )
    parser.add_argument("--title", default=None, help="figure / page title")
    parser.add_argument(
        "--no-ablation",
        action="store_true",
        help="HTML: skip the 'what happens without it' panel (each head zero-ablated alone, "
        "one batched forward per head; decoders only)",
    )
    add_color_argument(parser)
    add_strict_vocab_argument(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from qkv.cli.vocab import check_vocabulary
    from qkv.viz.capture import capture
    from qkv.viz.explain import check_index
    from qkv.viz.model_source import emit, open_model, require_tokenizer

    if not args.out and not args.terminal:
        raise CliError("nothing to show: pass --out FILE.png, --out FILE.html or --terminal")
    out = Path(args.out) if args.out else None
    if out is not None and out.suffix.lower() not in (".png", ".html", ".htm"):
        raise CliError(f"--out {out} must end in .png or .html")
    if args.top_k < 1:
        raise CliError(f"--top-k must be >= 1, got {args.top_k}")
    opened = open_model(args.model, args.revision)
    tokenizer = require_tokenizer(opened)
    check_vocabulary(tokenizer, args.text, strict=args.strict_vocab, what="the text")
    cap = capture(opened.model, tokenizer, args.text, model_name=opened.name)
    layer = check_index("layer", args.layer, cap.num_layers)
    head = check_index("head", args.head, cap.num_heads)
    if args.rollout:
        from qkv.viz.rollout import rollout

        detail = rollout(cap.weights).float()  # (T, T)
        label = f"attention rollout over {cap.num_layers} layers"
    else:
        detail, label = cap.weights[layer, head], f"layer {layer}, head {head}"
    title = args.title or f"{cap.model_name}: {args.text}"
    if out is not None and out.suffix.lower() == ".png":
        from qkv.viz.heatmap import plot_grid, save_png

        figure = plot_grid(
            cap.weights,
            cap.tokens,
            layer=None if args.rollout else layer,
            head=None if args.rollout else head,
            detail=detail,
            detail_title=label,
            title=title,
        )
        save_png(figure, out)
        emit(f"wrote {out}: {cap.num_layers} layers × {cap.num_heads} heads grid and {label}")
    elif out is not None:
        try:
            from qkv.viz.html import write_html
        except ImportError as error:
            raise CliError(
                f"the HTML viewer (qkv.viz.html) is not available in this build ({error}); "
                "write a .png instead"
            ) from None
        ablation = None
        if not args.no_ablation:
            from qkv.viz.ablation import head_ablation
            from qkv.viz.capture import _encode

            ablation = head_ablation(opened.model, _encode(tokenizer, args.text))
        write_html(cap, out, title=title, ablation=ablation)
        emit(f"wrote {out}: open it in a browser (works offline)")
    if args.terminal:
        from qkv.viz.terminal import color_mode, format_top_attended, terminal_heatmap

        mode = color_mode(args.color)
        heatmap = terminal_heatmap(
            detail, cap.tokens, color=mode, title=f"{cap.model_name}: {label}"
        )
        top = format_top_attended(detail, cap.tokens, k=args.top_k)
        emit(f"{heatmap}\n\ntop {args.top_k} keys of each query:\n{top}")
    return 0
