"""Statistics as pure functions over plain data: agreement, win rates, ratings."""
