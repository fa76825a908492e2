<?php
// A Symfony application's side of Mercure, written with Debian's
// php-symfony-mercure (symfony/mercure 0.6.3): the library builds the
// publish request and the subscriber's mercureAuthorization cookie, as it
// does in a Symfony application. cmd/rumor/mercure_client_test.go runs it.
//
// The library signs tokens through lcobucci/jwt, which Debian does not
// package; Hs256Factory below is the TokenFactoryInterface the library
// calls instead, signing HS256 with PHP's hash_hmac.
//
//   php symfony.php publish < {"hub", "secret", "topics", "data", "private", "id", "type", "retry"}
//       publishes one Update through Hub::publish and prints the id the hub answered
//   php symfony.php cookie  < {"hub", "secret", "app", "subscribe"}
//       prints the Set-Cookie value Authorization::createCookie makes for a
//       request to the application at "app"

declare(strict_types=1);

require_once 'Symfony/Component/Mercure/autoload.php';

use Symfony\Component\HttpFoundation\Request;
use Symfony\Component\Mercure\Authorization;
use Symfony\Component\Mercure\Hub;
use Symfony\Component\Mercure\HubRegistry;
use Symfony\Component\Mercure\Jwt\FactoryTokenProvider;
use Symfony\Component\Mercure\Jwt\TokenFactoryInterface;
use Symfony\Component\Mercure\Update;

final class Hs256Factory implements TokenFactoryInterface
{
    private $secret;

    public function __construct(string $secret)
    {
        $this->secret = $secret;
    }

    public function create(?array $subscribe = [], ?array $publish = [], array $additionalClaims = []): string
    {
        $mercure = [];
        if (null !== $publish) {
            $mercure['publish'] = array_values($publish);
        }
        if (null !== $subscribe) {
            $mercure['subscribe'] = array_values($subscribe);
        }
        $claims = ['mercure' => $mercure];
        foreach ($additionalClaims as $name => $value) {
            if ($value instanceof \DateTimeInterface) {
                $value = $value->getTimestamp();
            }
            if (null !== $value) {
                $claims[$name] = $value;
            }
        }
        $enc = static function (string $s): string {
            return rtrim(strtr(base64_encode($s), '+/', '-_'), '=');
        };
        $signing = $enc(json_encode(['alg' => 'HS256', 'typ' => 'JWT'])).'.'.$enc(json_encode($claims, JSON_UNESCAPED_SLASHES));

        return $signing.'.'.$enc(hash_hmac('sha256', $signing, $this->secret, true));
    }
}

$in = json_decode(stream_get_contents(STDIN), true, 16, JSON_THROW_ON_ERROR);
$factory = new Hs256Factory($in['secret']);

switch ($argv[1] ?? '') {
    case 'publish':
        // The publisher's token: what FactoryTokenProvider asks the factory
        // for, a mercure.publish claim of every topic, and no exp, as
        // Symfony's MercureBundle makes them by default.
        $hub = new Hub($in['hub'], new FactoryTokenProvider($factory, [], ['*']), $factory);
        $update = new Update(
            $in['topics'],
            $in['data'] ?? '',
            (bool) ($in['private'] ?? false),
            $in['id'] ?? null,
            $in['type'] ?? null,
            $in['retry'] ?? null
        );
        echo $hub->publish($update);
        break;
    case 'cookie':
        $hub = new Hub($in['hub'], new FactoryTokenProvider($factory, [], []), $factory);
        $auth = new Authorization(new HubRegistry($hub), 3600);
        $cookie = $auth->createCookie(Request::create($in['app']), $in['subscribe'], []);
        echo (string) $cookie;
        break;
    default:
        fwrite(STDERR, "usage: php symfony.php publish|cookie < JSON\n");
        exit(2);
}
