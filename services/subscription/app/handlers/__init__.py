"""What each consumed event does to subscriptions."""
