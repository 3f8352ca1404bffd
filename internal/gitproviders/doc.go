// Package gitproviders speaks to GitHub, GitLab, Bitbucket Cloud and
// Codeberg (any Gitea/Forgejo): listing repositories and branches, creating
// and removing the push webhook on a repository, and verifying and decoding
// the webhooks they send, each with the provider's own signature scheme.
//
// Outbound calls go through internal/httpx's retrying APIClient; tokens are
// stored encrypted (secrets.PurposeGitTokens) and only decrypted to make a
// call.
package gitproviders
