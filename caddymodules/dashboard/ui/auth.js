"use strict";
// Sign-in beyond passwords: OAuth providers, two-factor codes, password change.
