"""Real-scale fixtures and bare-git baselines for mpspatch's performance targets."""
