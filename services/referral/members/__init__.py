"""Members, invite codes and binding (§6.2), distributors (§6.3), team and leaderboards (§6.6), loyalty events."""
