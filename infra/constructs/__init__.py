"""One construct per capability; infra.stack assembles them."""
