"""How a retrieved image is marked as a hit or a miss, in every figure (no heavy imports)."""

HIT_COLOUR, MISS_COLOUR = "#1a9850", "#d73027"


def frame_hit(ax, hit: bool) -> None:
    """Frame a retrieved image green and mark it ✓ (same class as the query), or red and ✗.

    The mark is there for readers who do not tell red from green."""
    colour = HIT_COLOUR if hit else MISS_COLOUR
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(3)
    ax.text(0.04, 0.96, "✓" if hit else "✗", transform=ax.transAxes, ha="left", va="top",
            fontsize=9, fontweight="bold", color=colour,
            bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.85))
