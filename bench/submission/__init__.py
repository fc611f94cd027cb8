"""A leaderboard submission bundle: the evaluated checkpoint as standalone code and weights, its
AutoAttack run again for the log and the adversarial images, and the files written out."""
